import { readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase, type Sql } from '../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { sleep } from '../../src/lib/process.ts';
import { restoreToMoment } from '../../src/vault/restore-to-moment.ts';
import { bareMachine } from '../support/bare-machine.ts';
import { runCli } from '../support/cli.ts';
import { seededRandom } from '../support/files.ts';
import { descendants, killTree } from '../support/processes.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';

/** The pg_receivewal child of a `trendgen protect` process. */
function receiverPid(protectPid: number): number | undefined {
  return descendants(protectPid).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pg_receivewal');
    } catch {
      return false;
    }
  });
}

interface Machine {
  env: Record<string, string>;
  dataDir: string;
  pg: EmbeddedPostgres;
  sql: Sql;
  protect: ReturnType<typeof runCli>;
  remove(): Promise<void>;
}

async function lag(
  env: Record<string, string>,
): Promise<{ lag: number | null; window: unknown; recoverableUntil: number }> {
  const result = await runCli(['status', '--json'], env);
  const status = JSON.parse(result.stdout || 'null');
  const source = status?.sources?.[0];
  return {
    lag: source?.lagSeconds ?? null,
    window: status?.window ?? null,
    recoverableUntil: source?.recoverableUntil ? Date.parse(source.recoverableUntil) : 0,
  };
}

/** The embedded PostgreSQL of a fresh DATA_DIR with `trendgen protect` streaming it, its first base backup taken. */
async function startMachine(): Promise<Machine> {
  const machine = bareMachine('fault-continuous');
  const { temp, dataDir, env } = machine;
  const pg = machine.postgres();
  const running = await pg.start();
  const protect = runCli(['protect'], env);
  for (let i = 0; i < 240 && !(await lag(env)).window; i++) await sleep(500);
  const sql = openDatabase(running.url, { max: 2 });
  await sql`create table if not exists ledger (id serial primary key, note text not null)`;
  return {
    env,
    dataDir,
    pg,
    sql,
    protect,
    remove: async () => {
      if (protect.child.pid) killTree(protect.child.pid);
      await sql.end({ timeout: 1 }).catch(() => {});
      await new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 })
        .stop()
        .catch(() => {});
      temp.remove();
    },
  };
}

/**
 * receiver-killed: under a write load, pg_receivewal is SIGKILLed 2–4 times at random moments. The stream must
 * catch up with no gap: after a power cut (every process SIGKILLed, DATA_DIR deleted) the restore of the newest
 * moment holds every write acknowledged more than a second before the cut.
 */
describe('faults: continuous protection', () => {
  const machines: Machine[] = [];
  afterAll(async () => {
    for (const machine of machines) await machine.remove();
  });

  it.skipIf(!scenarioSelected('receiver-killed'))(
    'receiver-killed: the WAL stream catches up with no gap after its receiver is killed under load',
    async () => {
      for (let run = 0; run < faultRuns(); run++) {
        const seed = runSeed('receiver-killed', run);
        const random = seededRandom(seed);
        const machine = await startMachine();
        machines.push(machine);
        const acked: Array<{ id: number; at: number }> = [];
        let writing = true;
        const load = (async () => {
          while (writing) {
            const [row] = await machine.sql<
              { id: number }[]
            >`insert into ledger (note) values (${`w${acked.length}`}) returning id`;
            acked.push({ id: row!.id, at: Date.now() });
          }
        })();
        const kills = 2 + Math.floor(random() * 3);
        const killed = new Set<number>();
        for (let k = 0; k < kills; k++) {
          await sleep(500 + random() * 2000);
          const pid = receiverPid(machine.protect.child.pid!);
          if (pid) {
            process.kill(pid, 'SIGKILL');
            killed.add(pid);
          }
        }
        const lastKill = Date.now();
        // Catching up: a new receiver streams (protect restarts it after a backoff of 1 s and more), and the
        // lag falls back under a second with WAL written since it started. The lag alone reads under a second
        // for a moment after a kill, before any WAL was missed: that once let the cut come while no receiver ran.
        let caughtUp = false;
        let restartedAt: number | undefined;
        for (let i = 0; i < 120 && !caughtUp; i++) {
          await sleep(250);
          const pid = receiverPid(machine.protect.child.pid!);
          if (!pid || killed.has(pid)) continue;
          restartedAt ??= Date.now();
          const { lag: seconds, recoverableUntil } = await lag(machine.env);
          caughtUp = seconds !== null && seconds < 1 && recoverableUntil > restartedAt;
        }
        const recoveryMs = Date.now() - lastKill;
        await sleep(1000 + random() * 1000);
        writing = false;
        await load;
        const cut = Date.now();
        killTree(machine.protect.child.pid!);
        process.kill(machine.pg.findRunning()!.pid, 'SIGKILL');
        await machine.sql.end({ timeout: 1 }).catch(() => {});
        rmSync(machine.dataDir, { recursive: true, force: true });

        const restored = await restoreToMoment(loadConfig(machine.env, { dotEnv: false }), {
          time: undefined,
        });
        const back = new EmbeddedPostgres({
          root: machine.dataDir,
          user: 'trends',
          database: 'trends',
          port: 0,
        });
        const running = await back.start();
        const check = openDatabase(running.url, { max: 1 });
        const present = new Set((await check<{ id: number }[]>`select id from ledger`).map((r) => r.id));
        await check.end({ timeout: 5 });
        await back.stop();
        const due = acked.filter((a) => a.at < cut - 1000);
        const lost = due.filter((a) => !present.has(a.id)).length;
        recordRun({
          scenario: 'receiver-killed',
          seed,
          acknowledged: due.length,
          lost,
          corrupted: 0,
          recoveryMs,
        });
        expect(caughtUp, `the stream had not caught up ${recoveryMs} ms after the last kill`).toBe(true);
        expect(
          lost,
          `seed ${seed}: ${lost} of ${due.length} writes acknowledged over a second before the cut (${new Date(cut).toISOString()}) are gone; restored ${JSON.stringify({ ...restored.postgres, notice: restored.notice })}`,
        ).toBe(0);
        await machine.remove();
        machines.splice(machines.indexOf(machine), 1);
      }
    },
    3_600_000,
  );
});
