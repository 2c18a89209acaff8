/**
 * Continuous-protection benchmark (issue 11, "What must be shown"): trendgen's WAL stream (async, then sync)
 * and pgBackRest 2.45 (archive-async) side by side on one PostgreSQL under one pgbench write load, in one
 * run: recovery-point lag p50/p99, base backup time, restore-to-time time (with pg_restore of a pg_dump -Fd
 * as the baseline), and the latency of prompt PUTs and example uploads on a real `trendgen serve` with
 * protection off, async and sync. Not a test: it never fails on time.
 *
 *   npx tsx bench/pitr.ts [--scale small|full] [--tps N] [--phase-seconds N] [--api-requests N]
 *                         [--api-rounds N] [--restore-runs N] [--skip-api] [--write-docs] [--keep] [--verbose]
 *
 * Needs pgBackRest (`apt-get install pgbackrest`, the Debian package is 2.45) and PostgreSQL 15's binaries
 * (pgbench, pg_dump, pg_restore). As root, PostgreSQL and pgBackRest run as the `postgres` user.
 * --scale small (default): pgbench scale 10 (~160 MB), 40 s per load phase; full: scale 50 (~750 MB), 120 s.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { loadConfig } from '../src/config/config.ts';
import { ensureDatabase, openDatabase } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';
import { findPostgresBinary } from '../src/embedded/binaries.ts';
import { EmbeddedPostgres } from '../src/embedded/postgres.ts';
import { EmbeddedRedis } from '../src/embedded/redis.ts';
import { runAsFor } from '../src/embedded/run-as.ts';
import { sleep } from '../src/lib/process.ts';
import { listBaseBackups, type Repository } from '../src/vault/repository/index.ts';
import { openRepository, resolveTargets } from '../src/vault/targets.ts';
import { takeBaseBackup } from '../src/vault/wal/base-backup.ts';
import { parseLsn, parseSegmentName, segmentName, segmentOf, segmentStart } from '../src/vault/wal/lsn.ts';
import { planPointInTime } from '../src/vault/wal/pitr-plan.ts';
import { restorePhysical } from '../src/vault/wal/pitr-restore.ts';
import { stopPoint } from '../src/vault/wal/restore-wal.ts';
import { apiLoad, prepareApi } from './lib/api-load.ts';
import { startCluster } from './lib/cluster.ts';
import { serverCpuBetween, serverTicks, treeBytes } from './lib/measure.ts';
import { INSTALL_HINT, makePgBackRest, type PgBackRest, pgbackrestVersion } from './lib/pgbackrest.ts';
import {
  type ApiMode,
  type LoadPhase,
  type PgbenchFigures,
  type PitrReport,
  renderPitrReport,
  type TimedStep,
} from './lib/pitr-report.ts';
import { killChildren, ownedDir, percentile, run, start } from './lib/proc.ts';
import { writeDocs } from './lib/report.ts';
import { PROJECT_ROOT, TRENDGEN } from './lib/tools.ts';

const SCALES = {
  small: { name: 'small', pgbench: 10, phaseS: 40, tps: 150, apiRequests: 60, apiRounds: 4 },
  full: { name: 'full', pgbench: 100, phaseS: 120, tps: 150, apiRequests: 240, apiRounds: 12 },
} as const;

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: 'small' },
    tps: { type: 'string' },
    'phase-seconds': { type: 'string' },
    'api-requests': { type: 'string' },
    'api-rounds': { type: 'string' },
    'restore-runs': { type: 'string' },
    'skip-api': { type: 'boolean', default: false },
    'write-docs': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
  strict: true,
});

const scale = SCALES[args.scale as keyof typeof SCALES];
if (!scale) {
  process.stderr.write(`--scale takes small or full, not ${args.scale}.\n`);
  process.exit(2);
}
function whole(name: string, value: string | undefined, fallback: number): number {
  const n = Number(value ?? fallback);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`--${name} takes a whole number >= 1, not ${value}.\n`);
    process.exit(2);
  }
  return n;
}
const tps = whole('tps', args.tps, scale.tps);
const phaseS = whole('phase-seconds', args['phase-seconds'], scale.phaseS);
const apiRequests = whole('api-requests', args['api-requests'], scale.apiRequests);
const apiRounds = whole('api-rounds', args['api-rounds'], scale.apiRounds);
const restoreRuns = whole('restore-runs', args['restore-runs'], 3);
const pgbackrest = pgbackrestVersion();
if (!pgbackrest) {
  process.stderr.write(`${INSTALL_HINT}\n`);
  process.exit(2);
}

const started = Date.now();
const log = (message: string) =>
  process.stderr.write(`[pitr ${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s] ${message}\n`);
const during: Array<{ what: string; load: number }> = [];
const mark = (what: string) => during.push({ what, load: os.loadavg()[0]! });

interface Sample {
  t: number;
  lsn: bigint;
  /** trendgen: recorded in the vault (shipped_lsn), and fsynced by its receiver (flush_lsn). */
  shipped: bigint | undefined;
  received: bigint | undefined;
  reported: number | undefined;
  /** pgBackRest: the end of the newest segment in its repository. */
  archived: bigint | undefined;
}

interface Ctx {
  root: string;
  pg?: EmbeddedPostgres;
  redis?: EmbeddedRedis;
  sql?: postgres.Sql;
  protect?: ReturnType<typeof start>;
  serve?: ReturnType<typeof start>;
  /** The postmaster's pid, for the CPU PostgreSQL spends. */
  pgPid?: number;
}

const ctx: Ctx = { root: mkdtempSync(path.join('/tmp', 'tg-pitr-')) };
// The unprivileged postgres user must be able to enter it when this runs as root.
chmodSync(ctx.root, 0o755);
const runAs = runAsFor('postgres', ctx.root);

/** Bytes in trendgen's repository (BACKUP_DIR without the receiver's incoming folder). */
function vaultBytes(dir: string): number {
  return treeBytes(dir).bytes - treeBytes(path.join(dir, 'incoming')).bytes;
}

/** CPU seconds (user + system) of this process since `from`: children such as pg_basebackup are not in it. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

/** WAL segments from the one holding `from` to the one holding `to`. */
function neededSegments(from: string, to: string | undefined): string {
  return to === undefined ? '?' : String(segmentOf(parseLsn(to)) - segmentOf(parseLsn(from)) + 1n);
}

function segmentEnd(name: string): bigint {
  return segmentStart(parseSegmentName(name).segno + 1n);
}

/** Samples the WAL position and what each tool holds every 200 ms, until stopped. */
function sampler(sql: postgres.Sql, pgbr: PgBackRest) {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      try {
        const [row] = await sql<
          {
            t: number;
            lsn: string;
            arch: string | null;
            shipped: string | null;
            lag: number | null;
            flush: string | null;
          }[]
        >`select extract(epoch from clock_timestamp())::float8 * 1000 as t, pg_current_wal_lsn()::text as lsn,
            (select last_archived_wal from pg_stat_archiver) as arch,
            (select shipped_lsn::text from wal_stream_status order by target limit 1) as shipped,
            (select greatest(0, extract(epoch from clock_timestamp() - recoverable_until))::float8
              from wal_stream_status order by target limit 1) as lag,
            (select flush_lsn::text from pg_stat_replication where application_name = 'trendgen_wal' limit 1) as flush`;
        const newest = pgbr.newestArchived(row!.arch);
        samples.push({
          t: row!.t,
          lsn: parseLsn(row!.lsn),
          shipped: row!.shipped ? parseLsn(row!.shipped) : undefined,
          received: row!.flush ? parseLsn(row!.flush) : undefined,
          reported: row!.lag ?? undefined,
          archived: newest ? segmentEnd(newest) : undefined,
        });
      } catch (error) {
        if (args.verbose) log(`sample failed: ${(error as Error).message}`);
      }
      await sleep(Math.max(0, 200 - (Date.now() - at)));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * Seconds between a sample and the newest moment recoverable at it: when the WAL reached the tool's
 * recoverable position, interpolated between the two samples around it (0 when it reaches the current one).
 */
function lagSeconds(samples: Sample[], from: number, to: number, pick: (s: Sample) => bigint | undefined) {
  const out: number[] = [];
  for (let i = from; i < to; i++) {
    const now = samples[i]!;
    const reach = pick(now);
    if (reach === undefined) continue;
    if (reach >= now.lsn) {
      out.push(0);
      continue;
    }
    let j = i;
    while (j >= 0 && samples[j]!.lsn > reach) j--;
    if (j < 0) {
      out.push((now.t - samples[0]!.t) / 1000);
      continue;
    }
    const a = samples[j]!;
    const b = samples[j + 1]!;
    const share = b.lsn > a.lsn ? Number(reach - a.lsn) / Number(b.lsn - a.lsn) : 0;
    out.push((now.t - (a.t + share * (b.t - a.t))) / 1000);
  }
  return out;
}

function pgEnv(port: number, password: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'trends',
    PGPASSWORD: password,
    TZ: 'UTC',
  };
}

function parsePgbench(out: string): PgbenchFigures | undefined {
  const tpsMatch = /tps = ([\d.]+)/.exec(out);
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  const dev = /latency stddev = ([\d.]+) ms/.exec(out);
  if (!tpsMatch || !lat) return undefined;
  return { tps: Number(tpsMatch[1]), latencyMs: Number(lat[1]), stddevMs: Number(dev?.[1] ?? Number.NaN) };
}

function pgbench(env: NodeJS.ProcessEnv, seconds: number, onStart?: (child: ChildProcess) => void) {
  return run(
    findPostgresBinary('pgbench'),
    ['-n', '-c', '4', '-j', '2', '-R', String(tps), '-T', String(seconds), 'bench'],
    { env, ...(onStart ? { onStart, allowFail: true } : {}) },
  );
}

function trendgenEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: path.join(ctx.root, 'home'),
    LANG: 'C.UTF-8',
    DATA_DIR: path.join(ctx.root, 'tg', 'data'),
    PROMPTS_DIR: path.join(ctx.root, 'tg', 'prompts'),
    BACKUP_DIR: path.join(ctx.root, 'tg', 'backups'),
    BACKUP_SCHEDULE: 'off',
    DRILL_SCHEDULE: 'off',
    BACKUP_CONTINUOUS: 'on',
    LOG_LEVEL: args.verbose ? 'info' : 'warn',
    ...extra,
  };
}

/** Starts `trendgen protect` and waits until it streams (with `caughtUp`, until it has shipped the WAL written so far and every queued object). */
async function startProtect(url: string, sql: postgres.Sql, caughtUp = false): Promise<void> {
  if (ctx.protect) return;
  const child = start('node', [TRENDGEN, 'protect'], { env: trendgenEnv({ DATABASE_URL: url }) });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => {
    output = (output + c.toString()).slice(-8000);
    if (args.verbose) process.stderr.write(c);
  });
  child.stderr!.on('data', (c: Buffer) => {
    output = (output + c.toString()).slice(-8000);
    if (args.verbose) process.stderr.write(c);
  });
  ctx.protect = child;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`trendgen protect exited: ${output}`);
    const rows = await sql<{ ok: boolean }[]>`
      select exists (select 1 from pg_stat_replication where application_name = 'trendgen_wal') and
        exists (select 1 from wal_stream_status where receiver = 'streaming' and shipped_lsn is not null
          and updated_at > clock_timestamp() - interval '3 seconds') as ok`.catch(() => [{ ok: false }]);
    if (rows[0]?.ok) break;
    await sleep(200);
    if (i === 599) throw new Error(`trendgen protect did not start streaming: ${output}`);
  }
  if (!caughtUp) return;
  // By time, not position: the WAL's end may be protect's own status commits, which it leaves unstored.
  const [now] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
  for (let i = 0; ; i++) {
    const [row] = await sql<{ ok: boolean }[]>`
      select coalesce(bool_and(recoverable_until >= ${now!.t}), false) as ok from wal_stream_status`;
    if (row?.ok) break;
    if (i === 1500) throw new Error('trendgen protect did not catch up with the WAL within five minutes');
    await sleep(200);
  }
  // The objects uploaded while protect was stopped are streamed before a measured round starts: protect never
  // stops in service, so that backlog is the bench's own, and the round after an "off" one paid for it.
  const [queue] = await sql<
    { exists: boolean }[]
  >`select to_regclass('object_stream_queue') is not null as exists`;
  if (!queue?.exists) return;
  for (let i = 0; ; i++) {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from object_stream_queue`;
    if (row?.n === 0) return;
    if (i === 1500) throw new Error('trendgen protect did not stream the queued objects within five minutes');
    await sleep(200);
  }
}

async function stopProtect(): Promise<void> {
  const child = ctx.protect;
  ctx.protect = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('close', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(30_000)]);
}

async function setSync(sql: postgres.Sql, on: boolean): Promise<void> {
  if (on) await sql`alter system set synchronous_standby_names = 'trendgen_wal'`;
  else await sql`alter system reset synchronous_standby_names`;
  await sql`select pg_reload_conf()`;
  for (let i = 0; i < 100; i++) {
    const [row] = await sql<{ s: string }[]>`select current_setting('synchronous_standby_names') as s`;
    if ((row!.s === 'trendgen_wal') === on) break;
    await sleep(100);
  }
  if (on) {
    for (let i = 0; i < 600; i++) {
      const rows =
        await sql`select 1 from pg_stat_replication where application_name = 'trendgen_wal' and sync_state = 'sync'`;
      if (rows.length) return;
      await sleep(100);
    }
    throw new Error('the WAL receiver did not become the synchronous standby within a minute');
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  log(
    `scale ${scale.name} (pgbench -s ${scale.pgbench}), ${phaseS} s per phase at ${tps} tps; ${pgbackrest}; temp ${ctx.root}`,
  );
  const pg = new EmbeddedPostgres({
    root: path.join(ctx.root, 'pg'),
    user: 'trends',
    database: 'postgres',
    port: 0,
    settings: { archive_mode: 'on', max_slot_wal_keep_size: '4096MB', max_wal_size: '2GB' },
  });
  ctx.pg = pg;
  const running = await pg.start();
  ctx.pgPid = running.pid;
  const password = readFileSync(pg.passwordFile, 'utf8').trim();
  await ensureDatabase(pg.url(running.port, 'postgres'), 'bench');
  const url = pg.url(running.port, 'bench');
  const env = pgEnv(running.port, password);
  const sql = postgres(url, { max: 3, onnotice: () => {} });
  ctx.sql = sql;
  const tg = openDatabase(url, { max: 1 });
  await migrate(tg);
  await tg.end({ timeout: 5 });
  log(`pgbench -i -s ${scale.pgbench}`);
  await run(findPostgresBinary('pgbench'), ['-i', '-q', '-s', String(scale.pgbench), 'bench'], { env });
  const [size] = await sql<{ mb: number }[]>`select pg_database_size('bench')::float8 / 1048576 as mb`;

  log('pgBackRest: stanza, archive_command, check');
  const pgbr = makePgBackRest(
    path.join(ctx.root, 'pgbr'),
    { dataDir: pg.dataDir, port: running.port, socketDir: pg.runDir, user: 'trends', password },
    runAs,
  );
  await pgbr.exec(['stanza-create']);
  await sql.unsafe(`alter system set archive_command = '${pgbr.archiveCommand.replaceAll("'", "''")}'`);
  await sql`select pg_reload_conf()`;
  await pgbr.exec(['check']);

  log('trendgen protect: streaming and its first base backup');
  await startProtect(url, sql);
  const config = loadConfig(trendgenEnv({ DATABASE_URL: url }) as Record<string, string>, { dotEnv: false });
  let repo: Repository | undefined;
  for (let i = 0; i < 600 && !repo; i++) {
    try {
      const r = await openRepository(resolveTargets(config)[0]!, config);
      if ((await listBaseBackups(r)).backups.length) repo = r;
    } catch {
      // not created yet
    }
    if (!repo) await sleep(500);
  }
  if (!repo) throw new Error('trendgen protect took no base backup within five minutes');

  const samp = sampler(sql, pgbr);
  // Base backups, one after the other, under the write load.
  log('base backups under load');
  let loadChild: ChildProcess | undefined;
  const loadRun = pgbench(env, 3600, (child) => {
    loadChild = child;
  });
  await sleep(3000);
  const baseBackups: TimedStep[] = [];
  const tgBefore = treeBytes(config.backup.dir).bytes;
  const cpu0 = process.cpuUsage();
  let t0 = performance.now();
  const record = await takeBaseBackup(repo, url);
  baseBackups.push({
    label: 'trendgen takeBaseBackup',
    seconds: (performance.now() - t0) / 1000,
    cpuS: cpuSince(cpu0),
    detail: `pg_basebackup -X none -c fast into the chunker; ${(record.size / 1048576).toFixed(0)} MB tar; +${((treeBytes(config.backup.dir).bytes - tgBefore) / 1048576).toFixed(0)} MB in BACKUP_DIR (with the WAL shipped meanwhile)`,
  });
  mark('trendgen base backup');
  log(`  trendgen ${baseBackups[0]!.seconds.toFixed(1)} s`);
  const before = treeBytes(pgbr.repo).bytes;
  t0 = performance.now();
  const pbBackup = await pgbr.exec(['backup', '--type=full']);
  baseBackups.push({
    label: 'pgBackRest',
    seconds: (performance.now() - t0) / 1000,
    cpuS: pbBackup.cpuS,
    detail: `backup --type=full (start-fast, process-max 1, zst; waits for the end WAL to be archived); +${((treeBytes(pgbr.repo).bytes - before) / 1048576).toFixed(0)} MB in its repo`,
  });
  mark('pgBackRest backup');
  log(`  pgBackRest ${baseBackups[1]!.seconds.toFixed(1)} s`);
  loadChild?.kill('SIGINT');
  await loadRun;

  const phases: LoadPhase[] = [];
  let target: Date | undefined;
  for (const name of ['off', 'async', 'sync'] as const) {
    // off: trendgen protect stopped (pgBackRest keeps archiving), for pgbench's figures without it.
    if (name === 'off') await stopProtect();
    else await startProtect(url, sql, true);
    await setSync(sql, name === 'sync');
    log(`load phase ${name}: ${phaseS} s`);
    const from = samp.samples.length;
    const protectPid = ctx.protect?.pid;
    const cpuBefore = protectPid ? serverTicks(protectPid) : undefined;
    const serverBefore = serverTicks(running.pid);
    const repoBefore = [vaultBytes(config.backup.dir), treeBytes(pgbr.repo).bytes];
    const load = pgbench(env, phaseS);
    if (name === 'async') {
      await sleep((phaseS * 1000) / 2);
      const [row] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
      target = new Date(row!.t.getTime());
    }
    const result = await load;
    const to = samp.samples.length;
    mark(`${name} phase`);
    const first = samp.samples[from]!;
    const last = samp.samples[to - 1]!;
    const lag = (pick: (s: Sample) => bigint | undefined) => lagSeconds(samp.samples, from, to, pick);
    phases.push({
      name,
      durationS: (last.t - first.t) / 1000,
      walMbPerS: Number(last.lsn - first.lsn) / 1048576 / ((last.t - first.t) / 1000),
      pgbench: parsePgbench(result.stdout),
      protectCpuS: protectPid && cpuBefore ? serverCpuBetween(cpuBefore, serverTicks(protectPid)) : undefined,
      serverCpuS: serverCpuBetween(serverBefore, serverTicks(running.pid)),
      repoGrowthMb: {
        trendgen: (vaultBytes(config.backup.dir) - repoBefore[0]!) / 1048576,
        pgBackRest: (treeBytes(pgbr.repo).bytes - repoBefore[1]!) / 1048576,
      },
      lags:
        name === 'off'
          ? [{ label: 'pgBackRest: in its repository (archive-async)', seconds: lag((s) => s.archived) }]
          : [
              { label: 'trendgen: recorded in the vault (shipped)', seconds: lag((s) => s.shipped) },
              {
                label: 'trendgen: fsynced by the receiver (restorable on this backup disk)',
                seconds: lag((s) => s.received),
              },
              { label: 'pgBackRest: in its repository (archive-async)', seconds: lag((s) => s.archived) },
            ],
      reported:
        name === 'off'
          ? []
          : samp.samples.slice(from, to).flatMap((s) => (s.reported === undefined ? [] : [s.reported])),
      load: os.loadavg()[0]!,
    });
  }
  await setSync(sql, false);

  // Both tools must hold the WAL past the target before they are asked to restore it.
  const [sw] = await sql<{ lsn: string }[]>`select pg_switch_wal()::text as lsn`;
  const switched = parseLsn(sw!.lsn);
  const needSegment = segmentName(1, segmentOf(switched));
  for (let i = 0; i < 600; i++) {
    const s = samp.samples.at(-1)!;
    if ((s.shipped ?? 0n) >= switched && (s.archived ?? 0n) >= segmentEnd(needSegment)) break;
    await sleep(200);
  }
  await samp.stop();
  // Archiving pauses (pgBackRest holds the WAL past T): the API modes and the restores run without it.
  await sql`alter system set archive_command = ''`;
  await sql`select pg_reload_conf()`;
  // The API before the restores: pg_restore's load writes gigabytes of WAL the receiver would have to catch up.
  let api: Awaited<ReturnType<typeof apiLatency>> | undefined;
  const notes: string[] = [];
  if (!args['skip-api']) {
    api = await apiLatency(url, sql).catch((error) => {
      notes.push(`The API latency part failed: ${(error as Error).message}`);
      return undefined;
    });
  }
  await stopProtect();
  const restores = await restoreAll(repo, pgbr, env, target!);
  const report: PitrReport = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    scale: scale.name,
    machine: `${os.availableParallelism()} CPUs (${os.cpus()[0]?.model.trim()}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GB RAM, Linux ${os.release()}`,
    versions: `node ${process.version}, PostgreSQL ${execFileSync(findPostgresBinary('postgres'), ['--version'], { encoding: 'utf8' }).trim().split(' ').at(-1)}, ${pgbackrest}`,
    loads: { before: loadBefore, after: [], during },
    database: `pgbench scale ${scale.pgbench} (${size!.mb.toFixed(0)} MB database), ${phaseS} s per load phase at ${tps} tps`,
    loadShape:
      `\`pgbench -n -c 4 -j 2 -R ${tps} -T ${phaseS}\` (TPC-B-like: three updates and an insert per transaction) on the one database, ` +
      'while trendgen protect (receiver + shipper every 500 ms) and pgBackRest archive-push (archive-async, archive_timeout unset) both run: ' +
      'the same WAL, the same moments. "sync" = `synchronous_standby_names = trendgen_wal` (what BACKUP_SYNC=on sets).',
    phases,
    baseBackups,
    restores: restores.steps,
    restoreCheck: restores.check,
    api: undefined,
    apiShape: '',
    notes: [],
    rerun: `npx tsx bench/pitr.ts --scale ${scale.name}${args.tps ? ` --tps ${tps}` : ''}${args['phase-seconds'] ? ` --phase-seconds ${phaseS}` : ''} --write-docs`,
  };
  if (api) {
    report.api = api.modes;
    report.apiShape = api.shape;
  }
  report.notes.push(...notes);
  report.loads.after = os.loadavg();
  const text = renderPitrReport(report);
  process.stdout.write(`\n${text}`);
  if (args['write-docs']) {
    writeDocs(path.join(PROJECT_ROOT, 'docs', 'benchmarks.md'), `pitr-${scale.name}`, text);
    log('wrote docs/benchmarks.md');
  }
}

async function countAt(dataDir: string, scratch: string): Promise<string> {
  const cluster = await startCluster(dataDir, scratch, 'trends', runAs);
  try {
    await cluster.promoted();
    const db = cluster.connect('bench');
    try {
      const [row] = await db<
        { n: number; m: Date | null }[]
      >`select count(*)::int as n, max(mtime) as m from pgbench_history`;
      return `${row!.n} pgbench_history rows`;
    } finally {
      await db.end({ timeout: 5 });
    }
  } finally {
    await cluster.stop();
  }
}

interface RestoreRun {
  seconds: number;
  cpuS: number;
  detail: string;
  count: string;
}

/** trendgen: the plan, the base backup's tar extracted, the WAL fetched and replayed to the last commit ≤ T. */
async function restoreTrendgen(repo: Repository, target: Date, round: number): Promise<RestoreRun> {
  execFileSync('sync');
  const tgDir = ownedDir(path.join(ctx.root, `r-tg-${round}`), runAs, 0o755);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const plan = await planPointInTime(repo, target);
  const phases: Array<[string, number]> = [['plan', performance.now()]];
  const result = await restorePhysical(repo, plan, {
    dataDir: path.join(tgDir, 'data'),
    scratch: path.join(tgDir, 'scratch'),
    superuser: 'trends',
    runAs,
    progress: (phase) => phases.push([phase, performance.now()]),
  });
  const end = performance.now();
  const cpuS = cpuSince(cpu0);
  const spent = phases.map(([name, at], i) => {
    const seconds = i === 0 ? at - t0 : (phases[i + 1]?.[1] ?? end) - at;
    return `${name} ${(seconds / 1000).toFixed(1)} s`;
  });
  // pg_waldump's search for the stop point runs inside the 'base' phase: time it again on its own.
  const searchStarted = performance.now();
  await stopPoint(path.join(tgDir, 'scratch', 'wal'), plan).catch(() => undefined);
  const waldump = (performance.now() - searchStarted) / 1000;
  const count = await countAt(path.join(tgDir, 'data'), ownedDir(path.join(tgDir, 'v'), runAs));
  rmSync(tgDir, { recursive: true, force: true });
  return {
    seconds: (end - t0) / 1000,
    cpuS,
    count,
    detail:
      `planPointInTime + restorePhysical: ${result.walFiles} WAL files fetched (${neededSegments(plan.base.startLsn, result.stopLsn)} needed to reach the moment), ` +
      `replay to ${result.stopLsn} (commit ${result.recoveredTo}), promote, checkpoint, clean stop. ` +
      `Phases of the median run: ${spent.join(', ')} (base = the tar extracted, done after ${(result.sideBySideMs.extract / 1000).toFixed(1)} s, while the WAL is fetched and pg_waldump finds the stop point, done after ${(result.sideBySideMs.wal / 1000).toFixed(1)} s, the search alone ${waldump.toFixed(1)} s; replay = start, replay, promote, checkpoint, stop)`,
  };
}

/** pgBackRest: restore --type=time, then the server replays (archive-get) and promotes; checkpoint, stop. */
async function restorePgBackRest(pgbr: PgBackRest, target: Date, round: number): Promise<RestoreRun> {
  execFileSync('sync');
  const pbDir = ownedDir(path.join(ctx.root, `r-pb-${round}`), runAs, 0o755);
  const pbData = ownedDir(path.join(pbDir, 'data'), runAs);
  const pbTarget = `${target.toISOString().replace('T', ' ').replace('Z', '')}+00`;
  const t0 = performance.now();
  const restored = await pgbr.exec([
    'restore',
    '--type=time',
    `--target=${pbTarget}`,
    '--target-action=promote',
    `--pg1-path=${pbData}`,
  ]);
  const cluster = await startCluster(pbData, ownedDir(path.join(pbDir, 's'), runAs), 'trends', runAs);
  await cluster.promoted();
  await cluster.sql`checkpoint`;
  await cluster.stop();
  const seconds = (performance.now() - t0) / 1000;
  const count = await countAt(pbData, ownedDir(path.join(pbDir, 'v'), runAs));
  rmSync(pbDir, { recursive: true, force: true });
  return {
    seconds,
    cpuS: restored.cpuS,
    count,
    detail: `restore --type=time (${restored.seconds.toFixed(1)} s in the median run), then start, replay (archive-get), promote, checkpoint, clean stop`,
  };
}

/** The median run as a step, with the range of all runs. */
function medianStep(label: string, runs: RestoreRun[]): TimedStep {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return {
    label,
    seconds: median.seconds,
    ...(runs.length > 1 ? { range: [sorted[0]!.seconds, sorted.at(-1)!.seconds] as [number, number] } : {}),
    cpuS: median.cpuS,
    detail: median.detail,
  };
}

async function restoreAll(repo: Repository, pgbr: PgBackRest, env: NodeJS.ProcessEnv, target: Date) {
  const iso = target.toISOString();
  log(`restores to ${iso}: ${restoreRuns} rounds, the order alternating`);
  const trendgenRuns: RestoreRun[] = [];
  const pgbackrestRuns: RestoreRun[] = [];
  for (let round = 0; round < restoreRuns; round++) {
    const order =
      round % 2 === 0 ? (['trendgen', 'pgBackRest'] as const) : (['pgBackRest', 'trendgen'] as const);
    for (const tool of order) {
      const done =
        tool === 'trendgen'
          ? await restoreTrendgen(repo, target, round)
          : await restorePgBackRest(pgbr, target, round);
      (tool === 'trendgen' ? trendgenRuns : pgbackrestRuns).push(done);
      mark(`${tool} restore`);
      log(`  ${tool} ${done.seconds.toFixed(1)} s`);
    }
  }
  const steps: TimedStep[] = [
    medianStep('trendgen restorePhysical', trendgenRuns),
    medianStep('pgBackRest', pgbackrestRuns),
  ];
  const counts = new Set([...trendgenRuns, ...pgbackrestRuns].map((r) => r.count));
  const tgCount = trendgenRuns[0]!.count;
  const pbCount = pgbackrestRuns[0]!.count;

  // The baseline the issue names: pg_restore of a pg_dump -Fd of the same database (no moment to choose).
  const dumpDir = path.join(ctx.root, 'dump');
  const dump = await run(findPostgresBinary('pg_dump'), ['-Fd', '-j', '2', '-f', dumpDir, 'bench'], { env });
  await run(findPostgresBinary('createdb'), ['bench_restore'], { env });
  execFileSync('sync');
  const restore = await run(findPostgresBinary('pg_restore'), ['-j', '2', '-d', 'bench_restore', dumpDir], {
    env,
  });
  steps.push({
    label: 'pg_restore -j 2 of pg_dump -Fd',
    seconds: restore.seconds,
    detail: `the newest state only (no point in time); the dump took ${dump.seconds.toFixed(1)} s`,
  });
  mark('pg_restore');
  log(`  pg_restore ${restore.seconds.toFixed(1)} s`);
  const check =
    `Target moment ${iso} (the middle of the async phase); medians of ${restoreRuns} rounds (min–max), the tools' order alternating. ` +
    `trendgen's restore holds ${tgCount}, pgBackRest's ${pbCount}: ` +
    (counts.size === 1 ? 'the same transactions, in every round.' : '**they differ**.');
  return { steps, check };
}

async function apiLatency(url: string, sql: postgres.Sql): Promise<{ modes: ApiMode[]; shape: string }> {
  log('API latency: trendgen serve');
  const redis = new EmbeddedRedis({ root: path.join(ctx.root, 'redis'), port: 0, appendfsync: 'everysec' });
  ctx.redis = redis;
  const rd = await redis.start();
  const admin = 'bench-admin-token-0123456789abcdef';
  const port = 20000 + Math.floor(Math.random() * 20000);
  const baseUrl = `http://127.0.0.1:${port}`;
  const serve = start('node', [TRENDGEN, 'serve'], {
    env: trendgenEnv({
      DATABASE_URL: url,
      REDIS_URL: rd.url,
      ADMIN_TOKEN: admin,
      API_TOKEN: 'bench-client-token-0123456789abcdef',
      PORT: String(port),
      HOST: '127.0.0.1',
    }),
  });
  ctx.serve = serve;
  let output = '';
  serve.stderr!.on('data', (c: Buffer) => {
    output = (output + c.toString()).slice(-4000);
  });
  serve.stdout!.on('data', (c: Buffer) => {
    output = (output + c.toString()).slice(-4000);
  });
  for (let i = 0; ; i++) {
    if (serve.exitCode !== null || i > 600) throw new Error(`trendgen serve did not become ready: ${output}`);
    const ok = await fetch(`${baseUrl}/healthz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) break;
    await sleep(200);
  }
  const trends = 20;
  const uploadBytes = 256 * 1024;
  await prepareApi(baseUrl, admin, trends);
  const seq = { n: 0 };
  await apiLoad(baseUrl, admin, { requests: 40, concurrency: 4, trends, uploadBytes, seq });
  const modes: ApiMode[] = (['off', 'async', 'sync'] as const).map((mode) => ({
    mode,
    promptPut: [],
    exampleUpload: [],
    errors: 0,
    rounds: [],
  }));
  for (let round = 0; round < apiRounds; round++) {
    for (let k = 0; k < modes.length; k++) {
      const m = modes[(k + round) % modes.length]!;
      if (m.mode === 'off') {
        await setSync(sql, false);
        await stopProtect();
      } else {
        await startProtect(url, sql, true);
        await setSync(sql, m.mode === 'sync');
      }
      await sleep(1000);
      const protectPid = ctx.protect?.pid;
      const cpu = {
        serve: serverTicks(serve.pid!),
        protect: protectPid ? serverTicks(protectPid) : undefined,
        pg: serverTicks(ctx.pgPid!),
      };
      const s = await apiLoad(baseUrl, admin, {
        requests: apiRequests,
        concurrency: 4,
        trends,
        uploadBytes,
        seq,
      });
      m.promptPut.push(...s.promptPut);
      m.exampleUpload.push(...s.exampleUpload);
      m.errors += s.errors;
      const p50 = [percentile(s.promptPut, 50) ?? Number.NaN, percentile(s.exampleUpload, 50) ?? Number.NaN];
      m.rounds.push(p50);
      log(
        `  round ${round + 1} ${m.mode}: p50 PUT ${p50[0]!.toFixed(0)} ms, upload ${p50[1]!.toFixed(0)} ms, ${s.errors} errors${s.lastError ? ` (last: ${s.lastError})` : ''}; CPU s: serve ${serverCpuBetween(cpu.serve, serverTicks(serve.pid!)).toFixed(2)}, protect ${protectPid && cpu.protect ? serverCpuBetween(cpu.protect, serverTicks(protectPid)).toFixed(2) : '–'}, PostgreSQL ${serverCpuBetween(cpu.pg, serverTicks(ctx.pgPid!)).toFixed(2)}`,
      );
    }
  }
  mark('API latency');
  await setSync(sql, false);
  await stopProtect();
  const shape =
    `${apiRounds} rounds × ${apiRequests} requests per mode from 4 concurrent clients (2 prompt PUTs with a new version each ` +
    `for every example upload of a new ${uploadBytes / 1024} KiB PNG), the modes' order rotating per round; one \`trendgen serve\` ` +
    '(BACKUP_CONTINUOUS=on, file object store), no pgbench load. off = no `trendgen protect` running; async = protect running; ' +
    'sync = protect running and `synchronous_standby_names = trendgen_wal`. A protect started for a round has first ' +
    'streamed the WAL and the objects written while it was stopped (its own backlog, which a protect that never stops has not).';
  return { modes, shape };
}

async function cleanup(): Promise<void> {
  killChildren();
  await ctx.sql?.end({ timeout: 5 }).catch(() => {});
  await Promise.all([ctx.pg?.stop().catch(() => {}), ctx.redis?.stop().catch(() => {})]);
  if (args.keep) log(`kept ${ctx.root}`);
  else rmSync(ctx.root, { recursive: true, force: true });
}

let cleaning: Promise<void> | undefined;
const cleanOnce = () => {
  cleaning ??= cleanup();
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping and cleaning up`);
    void cleanOnce().finally(() => process.exit(130));
  });
}
try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  await cleanOnce();
}
