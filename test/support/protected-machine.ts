import { afterAll, beforeAll } from 'vitest';
import { openDatabase, type Sql } from '../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { type BareMachine, bareMachine } from './bare-machine.ts';
import { runCli } from './cli.ts';
import { killTree } from './processes.ts';

export interface ProtectStatus {
  sources: Array<{ source: string; lagSeconds: number | null }>;
  window: unknown;
}

/**
 * A bare machine whose embedded PostgreSQL runs with `trendgen protect` beside it, both started before the
 * file's tests and stopped after them (with whatever PostgreSQL a test restored into DATA_DIR). Call it in a
 * describe block.
 */
export function protectedMachine(
  prefix: string,
  settings?: Record<string, string>,
): {
  machine: BareMachine;
  pg: EmbeddedPostgres;
  sql: () => Sql;
  protect: () => ReturnType<typeof runCli>;
  status: () => Promise<ProtectStatus>;
} {
  const machine = bareMachine(prefix);
  const pg = machine.postgres(settings);
  let sql: Sql | undefined;
  let protect: ReturnType<typeof runCli> | undefined;

  beforeAll(async () => {
    const running = await pg.start();
    sql = openDatabase(running.url, { max: 2 });
    protect = runCli(['protect'], machine.env);
  });

  afterAll(async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await sql?.end({ timeout: 1 }).catch(() => {});
    await pg.stop().catch(() => {});
    await new EmbeddedPostgres({ root: machine.dataDir, user: 'trends', database: 'trends', port: 0 })
      .stop()
      .catch(() => {});
    machine.temp.remove();
  });

  return {
    machine,
    pg,
    sql: () => sql!,
    protect: () => protect!,
    status: async () => {
      const result = await runCli(['status', '--json'], machine.env);
      if (!result.stdout) throw new Error(`trendgen status printed nothing: ${result.stderr}`);
      return JSON.parse(result.stdout) as ProtectStatus;
    },
  };
}
