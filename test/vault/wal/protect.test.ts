import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { sleep } from '../../../src/lib/process.ts';
import { runCli } from '../../support/cli.ts';
import { killTree } from '../../support/processes.ts';
import { protectedMachine } from '../../support/protected-machine.ts';

// I11 and I9: `trendgen protect` keeps PostgreSQL's recovery point about a second old; after every process is
// SIGKILLed and DATA_DIR is deleted, `restore --to-time` brings back exactly the commits before the moment.
describe('I11 trendgen protect, then restore --to-time onto a bare machine', { timeout: 300_000 }, () => {
  const protected_ = protectedMachine('protect');
  const { machine, pg, status } = protected_;
  const { dataDir, env } = machine;

  it('restores every commit acknowledged before the moment and none after, with status showing the lag', async () => {
    const sql = protected_.sql();
    const protect = protected_.protect();
    // protect migrates the schema and takes the first base backup; wait until the window exists.
    for (let i = 0; i < 120; i++) {
      const s = await status().catch(() => undefined);
      if (s?.window && s.sources.length > 0) break;
      await sleep(500);
    }
    await sql`create table ledger (id serial primary key, note text not null)`;
    const acked: Array<{ id: number; at: number }> = [];
    const write = async (note: string) => {
      const [row] = await sql<{ id: number }[]>`insert into ledger (note) values (${note}) returning id`;
      acked.push({ id: row!.id, at: Date.now() });
    };
    for (let i = 0; i < 30; i++) await write(`before ${i}`);
    await sleep(300);
    const moment = (await sql<{ t: Date }[]>`select clock_timestamp() as t`)[0]!.t;
    const beforeMoment = acked.map((a) => a.id);
    await sleep(300);
    for (let i = 0; i < 30; i++) await write(`after ${i}`);
    await sleep(2000);
    const lag = (await status()).sources[0]?.lagSeconds;
    expect(lag).not.toBeNull();
    expect(lag!).toBeLessThan(2);

    // A drill restores a random moment of the window into scratch and proves it (I11).
    const drill = await runCli(['drill', '--moment', '--json'], env);
    expect(drill.code, `${drill.stderr}${drill.stdout}`).toBe(0);
    const drilled = JSON.parse(drill.stdout);
    expect(drilled.status).toBe('passed');
    expect(drilled.checks.map((c: { name: string }) => c.name)).toEqual([
      'postgres',
      'objects',
      'prompt-history',
    ]);

    // A power cut: every process at once, then the data folder is gone.
    killTree(protect.child.pid!);
    process.kill(pg.findRunning()!.pid, 'SIGKILL');
    await sql.end({ timeout: 1 }).catch(() => {});
    await sleep(500);
    rmSync(dataDir, { recursive: true, force: true });

    const restored = await runCli(['restore', '--to-time', moment.toISOString(), '--json'], env);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    const report = JSON.parse(restored.stdout);
    expect(Date.parse(report.postgres.recoveredTo)).toBeLessThanOrEqual(moment.getTime());
    const back = new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 });
    const running = await back.start();
    const check = openDatabase(running.url, { max: 1 });
    try {
      const ids = (await check<{ id: number }[]>`select id from ledger order by id`).map((r) => r.id);
      expect(ids).toEqual(beforeMoment);
    } finally {
      await check.end({ timeout: 5 });
      await back.stop();
    }
    expect(existsSync(path.join(dataDir, 'postgres', 'recovery.signal'))).toBe(false);

    const refused = await runCli(['restore', '--to-time', moment.toISOString()], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--in-place --yes/);
  });
});
