import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase, type Sql } from '../../src/db/connection.ts';
import { embeddedPostgres } from '../../src/embedded/connect.ts';
import { sleep } from '../../src/lib/process.ts';
import { runCli } from '../support/cli.ts';
import { seededRandom } from '../support/files.ts';
import { descendants } from '../support/processes.ts';
import { ROOMY, Tmpfs, tmpfsUnavailable } from '../support/tmpfs.ts';

import { dueBefore, POSTGRES_ALLOWANCE_MS } from './harness/allowance.ts';
import { emptyLedger, LoadGenerator, seedCatalog } from './harness/load.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import { FaultSystem } from './harness/system.ts';
import { verifyLedger } from './harness/verify.ts';

const MiB = 1024 * 1024;

const cannotMount = tmpfsUnavailable('continuous-disk-full');

/** The one sentence every surface must give while BACKUP_DIR is full: it says so and names the folder. */
function saysBackupDiskFull(text: unknown, backupDir: string): boolean {
  return typeof text === 'string' && /disk .*is full/i.test(text) && text.includes(backupDir);
}

interface Surfaces {
  status: string | null;
  readyz: string | null;
  doctor: string | null;
}

/** What `trendgen status --json`, `/readyz` and `trendgen doctor --json` say about the PostgreSQL stream. */
async function surfaces(system: FaultSystem): Promise<Surfaces> {
  const [status, ready, doctor] = await Promise.all([
    runCli(['status', '--json'], system.env),
    fetch(`${system.baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.json() as Promise<{ checks: Array<{ name: string; detail: string }> }>)
      .catch(() => undefined),
    runCli(['doctor', '--json'], system.env),
  ]);
  const statusBody = JSON.parse(status.stdout || 'null') as {
    sources?: Array<{ source: string; error: string | null }>;
  } | null;
  const doctorBody = JSON.parse(doctor.stdout || 'null') as {
    checks?: Array<{ id: string; message: string }>;
  } | null;
  return {
    status: statusBody?.sources?.find((s) => s.source === 'postgres')?.error ?? null,
    readyz: ready?.checks.find((c) => c.name === 'continuous')?.detail ?? null,
    doctor: doctorBody?.checks?.find((c) => c.id === 'backup.continuous')?.message ?? null,
  };
}

interface StreamStatus {
  window: { until: string | null } | null;
  sources: Array<{
    source: string;
    target: string;
    recoverableUntil: string | null;
    lagSeconds: number | null;
    error: string | null;
  }>;
}

async function streamStatus(env: Record<string, string>): Promise<StreamStatus> {
  const result = await runCli(['status', '--json'], env);
  return (JSON.parse(result.stdout || 'null') as StreamStatus | null) ?? { window: null, sources: [] };
}

/** The pids of `up`'s children (serve, worker, scheduler, protect): a crash loop changes them. */
function childPids(system: FaultSystem): Map<string, number> {
  const pids = new Map<string, number>();
  for (const role of ['serve', 'worker', 'scheduler', 'protect']) {
    const pid = descendantsOfUp(system).find((p) => {
      try {
        const args = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return args.includes(role) && args.some((a) => a.endsWith('trendgen.js'));
      } catch {
        return false;
      }
    });
    if (pid) pids.set(role, pid);
  }
  return pids;
}

function descendantsOfUp(system: FaultSystem): number[] {
  const serve = system.pidOf('serve');
  if (!serve) return [];
  const parent = Number(readFileSync(`/proc/${serve}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
  return descendants(parent);
}

/**
 * Rows written straight into PostgreSQL, big enough to move the WAL across segment boundaries within
 * seconds (pg_receivewal creates each new segment at its full size, so a full disk stops it there).
 */
class RowWriter {
  readonly acked: Array<{ id: number; at: number }> = [];
  private running = true;
  private loop: Promise<void> | undefined;
  constructor(
    private readonly sql: Sql,
    private readonly tag: string,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        try {
          const rows = await this.sql<{ id: string }[]>`insert into wal_fill (id, tag, body)
            select n, ${this.tag}, repeat(md5(${this.tag} || n::text), 32)
            from (select nextval('wal_fill_id_seq') as n from generate_series(1, 8)) s
            returning id`;
          const at = Date.now();
          for (const row of rows) this.acked.push({ id: Number(row.id), at });
        } catch {
          // Killed with everything else: nothing unacknowledged is promised.
          return;
        }
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/**
 * Fills the tmpfs: remounted to its use, or a file written until ENOSPC. `topUp` fills it again: the shipper
 * removes the local segments it has recorded, which frees room, and a disk that stays full (another writer
 * on it) takes that room back. `free` gives the space back.
 */
function filling(backups: Tmpfs, how: 'remount' | 'filler'): { topUp(): void; free(): void } {
  const filler = path.join(backups.dir, 'filler.bin');
  const topUp = () => {
    if (how === 'remount') {
      for (let attempt = 0; ; attempt++) {
        try {
          return backups.leave(0);
        } catch (error) {
          // Something grew between the measure and the remount (a tmpfs never shrinks below its use).
          if (attempt > 20) throw error;
        }
      }
    }
    const fd = openSync(filler, 'a');
    try {
      for (const size of [MiB, 4096]) {
        const chunk = Buffer.alloc(size, 1);
        try {
          for (;;) writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        }
      }
    } finally {
      closeSync(fd);
    }
  };
  topUp();
  return { topUp, free: () => (how === 'remount' ? backups.leave(ROOMY) : unlinkSync(filler)) };
}

/**
 * backup-disk-full-streaming: `trendgen up` (async mode) under API load and a row writer, with BACKUP_DIR on
 * its own tmpfs. At a random moment the tmpfs fills (remounted to its use, or a filler file) while WAL
 * streams into BACKUP_DIR/incoming/wal. While full: writes are still acknowledged, nothing crash-loops, and
 * status, /readyz and doctor say the backup disk is full in one sentence naming BACKUP_DIR. Space is freed;
 * the stream must catch up past every write acknowledged meanwhile. Then the data disk is lost and
 * `restore latest` must bring back everything acknowledged 1 s (PostgreSQL) / 5 s (objects) before the loss.
 */
describe.skipIf(Boolean(cannotMount) || !scenarioSelected('backup-disk-full-streaming'))(
  'faults: the backup disk fills while WAL streams',
  () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    }, 120_000);

    it(
      'backup-disk-full-streaming (I11): writes go on, every surface says why, the stream catches up',
      async () => {
        for (let run = 0; run < faultRuns(); run++) {
          const scenario = 'backup-disk-full-streaming';
          const seed = runSeed(scenario, run);
          const random = seededRandom(seed);
          const started = Date.now();
          const system = new FaultSystem('backup-disk-full', {
            BACKUP_KEY: randomBytes(32).toString('hex'),
            LOG_LEVEL: 'warn',
          });
          const backupDir = system.env.BACKUP_DIR!;
          const backups = new Tmpfs(backupDir);
          backups.mount(ROOMY);
          const cleanup = async () => {
            // Unmounted before the temp folder goes: a mount point cannot be removed.
            await system.stop();
            await system.killEverything();
            backups.unmount();
            await system.remove();
          };
          cleanups.push(cleanup);
          const ledger = emptyLedger();
          await system.start();
          await seedCatalog(system, ledger);
          // The first base backup must exist before there is a moment to restore.
          for (let i = 0; i < 240 && !(await streamStatus(system.env)).window; i++) await sleep(500);
          const config = loadConfig(system.env, { dotEnv: false });
          const sql = openDatabase(embeddedPostgres(config).findRunning()!.url, { max: 2 });
          await sql`create table wal_fill (id bigserial primary key, tag text not null, body text not null)`;
          const tag = `s${seed}`;
          const rows = new RowWriter(sql, tag);
          const load = new LoadGenerator(() => system, ledger, seed);
          await load.start();
          rows.start();

          await sleep(1000 + random() * 3000);
          const how = random() < 0.5 ? 'remount' : 'filler';
          const pidsBefore = childPids(system);
          const filledAt = Date.now();
          const full = filling(backups, how);
          console.log(`${scenario} seed ${seed}: BACKUP_DIR filled (${how}) after ${filledAt - started} ms`);

          // A new segment while full (a checkpoint or archive_timeout would do the same): pg_receivewal must
          // create its file, at full size, on the full disk.
          const switched = sleep(500 + random() * 2000).then(() => sql`select pg_switch_wal()`);
          // While full: every surface says so, and writes are still acknowledged.
          const said: Surfaces = { status: null, readyz: null, doctor: null };
          const fullFor = 4000 + random() * 4000;
          while (
            Date.now() - filledAt < fullFor ||
            !Object.values(said).every((t) => saysBackupDiskFull(t, backupDir))
          ) {
            const now = await surfaces(system);
            for (const key of Object.keys(now) as Array<keyof Surfaces>) {
              if (!saysBackupDiskFull(said[key], backupDir)) said[key] = now[key];
            }
            if (Date.now() - filledAt > 45_000) break;
            full.topUp();
            await sleep(500);
          }
          await switched;
          const ackedWhileFull =
            rows.acked.filter((r) => r.at > filledAt).length +
            ledger.prompts.filter((p) => (p.at ?? 0) > filledAt).length;
          const pidsWhileFull = childPids(system);
          const freedAt = Date.now();
          full.free();

          // Catching up: each source's recovery point passes the last write it acknowledged before space came
          // back (PostgreSQL: rows and prompt versions; objects: uploads), with no error left.
          const lastAck = (at: Array<number | undefined>) =>
            Math.max(0, ...at.filter((t) => t && t < freedAt).map(Number));
          const wanted: Record<string, number> = {
            postgres: Math.max(
              lastAck(rows.acked.map((r) => r.at)),
              lastAck(ledger.prompts.map((p) => p.at)),
            ),
            objects: lastAck(ledger.objects.map((o) => o.at)),
          };
          let caughtUpAt: number | undefined;
          let last: StreamStatus | undefined;
          while (!caughtUpAt && Date.now() - freedAt < 90_000) {
            last = await streamStatus(system.env);
            const ok =
              last.sources.some((s) => s.source === 'postgres') &&
              last.sources.every(
                (s) =>
                  s.recoverableUntil &&
                  Date.parse(s.recoverableUntil) > (wanted[s.source] ?? freedAt) &&
                  !s.error,
              );
            if (ok) caughtUpAt = Date.now();
            else await sleep(250);
          }
          const catchUpMs = caughtUpAt ? caughtUpAt - freedAt : -1;
          console.log(
            `${scenario} seed ${seed}: full for ${freedAt - filledAt} ms, ${ackedWhileFull} writes acknowledged meanwhile; ` +
              `caught up ${catchUpMs} ms after space was freed; said: ${JSON.stringify(said)}`,
          );
          if (process.env.DISK_FULL_DEBUG) {
            console.log(
              JSON.stringify({ pidsBefore: [...pidsBefore], pidsWhileFull: [...pidsWhileFull], last }),
            );
            console.log(system.output().slice(-20000));
          }
          // The load goes on a moment, then stops and the stream is given time to reach its last write: this
          // scenario is about the gap a full disk could leave, not the recovery point of an overloaded machine
          // (disk-lost measures that, under load at the cut).
          await sleep(1000 + random() * 1500);
          await Promise.all([load.stop(), rows.stop()]);
          const stoppedAt = Date.now();
          for (let i = 0; i < 120; i++) {
            const now = await streamStatus(system.env);
            const postgres = now.sources.find((s) => s.source === 'postgres');
            if (postgres?.recoverableUntil && Date.parse(postgres.recoverableUntil) > stoppedAt) break;
            await sleep(250);
          }
          const faultAt = Date.now();
          await system.killEverything();
          await sql.end({ timeout: 1 }).catch(() => {});
          const restore = await system.loseDataDiskAndRestore();
          expect(restore.code, restore.stderr).toBe(0);
          const due = dueBefore(ledger, faultAt);
          const verdict = await verifyLedger(system, due);
          const check = openDatabase(embeddedPostgres(config).findRunning()!.url, { max: 1 });
          const dueRows = rows.acked.filter((r) => r.at < faultAt - POSTGRES_ALLOWANCE_MS);
          const back = new Map(
            (
              await check<
                { id: string; intact: boolean }[]
              >`select id, body = repeat(md5(tag || id::text), 32) as intact from wal_fill`.catch(() => [])
            ).map((r) => [Number(r.id), r.intact]),
          );
          await check.end({ timeout: 5 });
          const rowsLost = dueRows.filter((r) => !back.has(r.id)).length;
          if (process.env.DISK_FULL_DEBUG) {
            const lostAt = dueRows.filter((r) => !back.has(r.id)).map((r) => r.at);
            const iso = (t: number) => new Date(t).toISOString();
            console.log(restore.stdout, restore.stderr);
            console.log(
              JSON.stringify({
                filledAt: iso(filledAt),
                freedAt: iso(freedAt),
                caughtUpAt: caughtUpAt && iso(caughtUpAt),
                faultAt: iso(faultAt),
                lostFrom: lostAt.length ? iso(Math.min(...lostAt)) : null,
                lostTo: lostAt.length ? iso(Math.max(...lostAt)) : null,
                firstRow: rows.acked[0] && iso(rows.acked[0].at),
              }),
            );
          }
          const acknowledged =
            due.prompts.length + due.objects.length + due.generations.length + dueRows.length;
          recordRun({
            scenario,
            seed,
            acknowledged,
            lost: verdict.lost + rowsLost,
            corrupted: verdict.corrupted,
            recoveryMs: catchUpMs,
          });
          console.log(`${scenario} seed ${seed}: run took ${Date.now() - started} ms`);

          const context = `seed ${seed} (${how})`;
          expect(pidsWhileFull, `${context}: a child of up restarted while the backup disk was full`).toEqual(
            pidsBefore,
          );
          expect(
            ackedWhileFull,
            `${context}: no write was acknowledged while the backup disk was full`,
          ).toBeGreaterThan(0);
          for (const [where, text] of Object.entries(said)) {
            expect(
              saysBackupDiskFull(text, backupDir),
              `${context}: ${where} said ${JSON.stringify(text)}`,
            ).toBe(true);
            expect(
              (text as string).trim().split(/(?<=\.)\s+(?=[A-Z])/),
              `${context}: ${where}: one sentence`,
            ).toHaveLength(1);
          }
          expect(
            caughtUpAt,
            `${context}: not caught up 90 s after space was freed: ${JSON.stringify(last)}`,
          ).toBeDefined();
          expect(verdict.problems, `${context}\n${restore.stdout}`).toEqual([]);
          expect(rowsLost, `${context}: ${rowsLost} of ${dueRows.length} acknowledged rows are gone`).toBe(0);
          expect([...back.values()].every(Boolean), `${context}: a restored row differs`).toBe(true);
          await cleanup();
          cleanups.splice(cleanups.indexOf(cleanup), 1);
        }
      },
      faultRuns() * 900_000,
    );
  },
);
