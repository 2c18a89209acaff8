import { type ChildProcess, spawn } from 'node:child_process';
import {
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { extract } from 'tar';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import type { RunAs } from '../../embedded/run-as.ts';
import { freePort, isAlive, sleep, waitForExit } from '../../lib/process.ts';
import type { Repository, WalRecord } from '../repository/index.ts';
import { limiter } from '../repository/io.ts';
import { DEFAULT_SEGMENT_BYTES, formatLsn, isSegmentName, parseLsn } from './lsn.ts';
import type { PointInTimePlan } from './pitr-plan.ts';
import { readTreeFile } from './tree-file.ts';

export interface PhysicalRestoreOptions {
  /** The data directory to create; it must not exist or be empty. */
  dataDir: string;
  /** A folder of this restore for WAL and the server's socket; removed by the caller. */
  scratch: string;
  /** The server's superuser (POSTGRES_USER for the embedded server). */
  superuser: string;
  /** Set the superuser's password (the service's current secret), for a restore onto a new machine. */
  password?: string;
  runAs: RunAs | undefined;
  /**
   * The receiver's folder on this machine: WAL it fsynced that the shipper had not recorded yet (in
   * synchronous mode, acknowledged commits) is replayed too, so a restore on the same backup disk loses nothing.
   */
  receivedWalDir?: string;
  /** Runs against the promoted server before it is shut down (drills verify the restored moment here). */
  inspect?: (connect: (database: string) => postgres.Sql) => Promise<void>;
  progress?: (phase: string, detail?: string) => void;
}

export interface PhysicalRestoreResult {
  baseBackup: { id: string; time: string };
  walFiles: number;
  /** Replay stopped after this LSN (undefined: all the WAL the archive holds was replayed). */
  stopLsn: string | undefined;
  /** The commit time of the last transaction replayed. */
  recoveredTo: string | undefined;
  durationMs: number;
}

/** The last commit at or before `target` in the fetched WAL, read with pg_waldump (times in UTC, in µs). */
async function stopPoint(
  walDir: string,
  plan: PointInTimePlan,
): Promise<{ lsn: bigint; time: string | undefined }> {
  const targetMicros = BigInt(plan.target!.getTime()) * 1000n;
  const args = [
    '-p',
    walDir,
    '-t',
    String(plan.base.timeline),
    '-s',
    plan.base.startLsn,
    '-r',
    'Transaction',
  ];
  let best: { lsn: bigint; time: string | undefined } = { lsn: parseLsn(plan.base.endLsn), time: undefined };
  const line =
    /lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC/;
  // Read as a stream, line by line, and stopped at the first commit past the target: however much WAL lies
  // between the base backup and the target, nothing is cut short (a buffered read could end early and make
  // the replay stop at an earlier commit than asked).
  const child = spawn(findPostgresBinary('pg_waldump'), args, {
    env: { ...process.env, TZ: 'UTC' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  for await (const text of createInterface({ input: child.stdout! })) {
    const match = line.exec(text);
    if (!match) continue;
    const micros =
      BigInt(Date.parse(`${match[2]}T${match[3]}Z`)) * 1000n + BigInt((match[4] ?? '').padEnd(6, '0') || '0');
    if (micros > targetMicros) break;
    const lsn = parseLsn(match[1]!);
    if (lsn >= best.lsn) best = { lsn, time: new Date(Number(micros / 1000n)).toISOString() };
  }
  // pg_waldump ends with an error at the end of the WAL it was given; past the target it is simply stopped.
  child.kill('SIGKILL');
  await exited;
  return best;
}

/** WAL records restored at once: each is a small read, decode and fsync that overlap well. */
const WAL_FETCH_CONCURRENCY = 4;

/**
 * The part of the plan's WAL that a restore to its target needs: up to the first record whose WAL covers
 * the target (every commit at or before it lies in that record or earlier), and never short of the base
 * backup's end. Everything when the target is the archive's end or beyond what the records cover.
 */
export function walNeeded(plan: PointInTimePlan): { wal: WalRecord[]; trimmed: boolean } {
  if (!plan.target) return { wal: plan.wal, trimmed: false };
  const baseEnd = parseLsn(plan.base.endLsn);
  const index = plan.wal.findIndex(
    (record) =>
      record.coversUntil !== undefined &&
      Date.parse(record.coversUntil) >= plan.target!.getTime() &&
      record.endLsn !== undefined &&
      parseLsn(record.endLsn) >= baseEnd,
  );
  if (index < 0 || index === plan.wal.length - 1) return { wal: plan.wal, trimmed: false };
  return { wal: plan.wal.slice(0, index + 1), trimmed: true };
}

/** Fetches WAL records, verified, into `walDir`; a partial segment is padded to a whole one with zeros. */
async function fetchWal(
  repo: Repository,
  plan: PointInTimePlan,
  wal: WalRecord[],
  walDir: string,
  receivedDir?: string,
): Promise<number> {
  mkdirSync(walDir, { recursive: true });
  const limit = limiter(WAL_FETCH_CONCURRENCY);
  await Promise.all(
    wal.map((record) =>
      limit(async () => {
        await repo.restoreTree(record.tree, walDir);
        if (record.kind === 'partial') truncateSync(path.join(walDir, record.name), DEFAULT_SEGMENT_BYTES);
      }),
    ),
  );
  return receivedDir ? addReceivedWal(plan, walDir, receivedDir) : 0;
}

/** Segments of the plan's timeline the receiver holds beyond the recorded chain (the newest one may be partial). */
function addReceivedWal(plan: PointInTimePlan, walDir: string, receivedDir: string): number {
  if (!existsSync(receivedDir)) return 0;
  const last = plan.wal.at(-1);
  const lastComplete = last?.kind === 'segment' ? last.name : undefined;
  const prefix = plan.base.timeline.toString(16).toUpperCase().padStart(8, '0');
  let added = 0;
  for (const file of readdirSync(receivedDir).sort()) {
    const name = file.replace(/\.partial$/, '');
    if (!isSegmentName(name) || !name.startsWith(prefix)) continue;
    if (last && (name < last.name || name === lastComplete)) continue;
    copyFileSync(path.join(receivedDir, file), path.join(walDir, name));
    if (file.endsWith('.partial')) truncateSync(path.join(walDir, name), DEFAULT_SEGMENT_BYTES);
    added++;
  }
  return added;
}

/** The base backup's tar, verified chunk by chunk, extracted straight into the new data directory. */
async function extractBase(repo: Repository, plan: PointInTimePlan, dataDir: string): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`${dataDir} is not empty: a physical restore creates a new data directory.`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const chunks = Readable.from(readTreeFile(repo, plan.base.tree));
  if (!(await extractWithSystemTar(chunks, dataDir))) {
    await pipeline(
      Readable.from(readTreeFile(repo, plan.base.tree)),
      extract({ cwd: dataDir, preserveOwner: false }),
    );
  }
  for (const dir of ['pg_wal', 'pg_wal/archive_status'])
    mkdirSync(path.join(dataDir, dir), { recursive: true });
}

/**
 * Extracts with the system's tar in its own process: the tar's parsing and the file writes then run beside
 * this process's reading, verifying and decompressing of the chunks, on another core. GNU tar refuses
 * members that climb out with `..` and strips a leading `/`; the archive is an authenticated record besides.
 * False when no tar program exists (the caller extracts in-process instead); a tar that fails is an error.
 */
async function extractWithSystemTar(chunks: Readable, dataDir: string): Promise<boolean> {
  const child = spawn('tar', ['-x', '-f', '-', '-C', dataDir, '--no-same-owner'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned) {
    chunks.destroy();
    return false;
  }
  let said = '';
  child.stderr!.on('data', (data: Buffer) => {
    said = `${said}${data.toString()}`.slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const tarFailed = (code: number | null) =>
    new Error(
      `tar could not extract the base backup into ${dataDir} (exit ${code}): ${said.trim().split('\n').slice(-2).join(' ')}`,
    );
  try {
    await pipeline(chunks, child.stdin!);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A tar that stopped reading closed the pipe: its own words say why. A damaged chunk stays that error.
    if (code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE') throw tarFailed(await exited);
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  const code = await exited;
  if (code !== 0) throw tarFailed(code);
  return true;
}

function chownTree(dir: string, runAs: RunAs): void {
  chownSync(dir, runAs.uid, runAs.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(full, runAs);
    else chownSync(full, runAs.uid, runAs.gid);
  }
}

/**
 * Restores PostgreSQL to a moment: the base backup extracted into a new data directory, the WAL after it
 * replayed by PostgreSQL itself up to the last commit at or before the target (found with pg_waldump, so
 * an idle stretch after the target cannot make recovery fail), then promoted and shut down cleanly. The
 * recovery settings are removed again, so the directory starts as an ordinary server afterwards.
 */
export async function restorePhysical(
  repo: Repository,
  plan: PointInTimePlan,
  options: PhysicalRestoreOptions,
): Promise<PhysicalRestoreResult> {
  const started = Date.now();
  const progress = options.progress ?? (() => {});
  const walDir = path.join(options.scratch, 'wal');
  const needed = walNeeded(plan);
  progress('base', `${plan.base.id} and ${needed.wal.length} WAL files`);
  // The WAL and the base backup are independent reads into different folders: fetched side by side, the
  // restore takes the longer of the two rather than their sum.
  // Both are settled before a failure is reported, so nothing still writes into the scratch folder the
  // caller removes.
  const [fetched, extracted] = await Promise.allSettled([
    fetchWal(repo, plan, needed.wal, walDir, needed.trimmed ? undefined : options.receivedWalDir),
    extractBase(repo, plan, options.dataDir),
  ]);
  if (extracted.status === 'rejected') throw extracted.reason;
  if (fetched.status === 'rejected') throw fetched.reason;
  const received = fetched.value;
  const stop = plan.target ? await stopPoint(walDir, plan) : undefined;
  const autoConf = path.join(options.dataDir, 'postgresql.auto.conf');
  const original = existsSync(autoConf) ? readFileSync(autoConf, 'utf8') : '';
  const recovery = [
    `restore_command = 'cp "${walDir}/%f" "%p"'`,
    "recovery_target_action = 'promote'",
    "recovery_target_timeline = 'current'",
    ...(stop ? [`recovery_target_lsn = '${formatLsn(stop.lsn)}'`, 'recovery_target_inclusive = on'] : []),
  ];
  writeFileSync(autoConf, `${original}\n${recovery.join('\n')}\n`);
  writeFileSync(path.join(options.dataDir, 'recovery.signal'), '');
  const socketDir = path.join(options.scratch, 'sock');
  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  // Only this process reaches the server while it recovers: a socket in a private folder, trusted.
  const hba = path.join(options.scratch, 'pg_hba.conf');
  writeFileSync(hba, 'local all all trust\n');
  if (options.runAs) {
    chownTree(options.dataDir, options.runAs);
    chownTree(options.scratch, options.runAs);
  }
  progress('replay', stop ? formatLsn(stop.lsn) : 'to the end of the archive');
  const port = await freePort();
  const server = startServer(options, port, socketDir, hba);
  let recoveredTo = stop?.time;
  try {
    const sql = postgres({
      host: socketDir,
      port,
      user: options.superuser,
      database: 'postgres',
      max: 1,
      onnotice: () => {},
    });
    try {
      await waitUntilPromoted(sql, server);
      const [row] = await sql<{ t: Date | null }[]>`select pg_last_xact_replay_timestamp() as t`;
      recoveredTo ??= row?.t ? row.t.toISOString() : undefined;
      if (options.password)
        await sql.unsafe(
          `alter role "${options.superuser.replaceAll('"', '""')}" password '${options.password.replaceAll("'", "''")}'`,
        );
      if (options.inspect) {
        const opened: postgres.Sql[] = [];
        const connect = (database: string) => {
          const db = postgres({
            host: socketDir,
            port,
            user: options.superuser,
            database,
            max: 1,
            onnotice: () => {},
          });
          opened.push(db);
          return db;
        };
        try {
          await options.inspect(connect);
        } finally {
          for (const db of opened) await db.end({ timeout: 5 });
        }
      }
      await sql`checkpoint`;
    } finally {
      await sql.end({ timeout: 5 });
    }
  } finally {
    await stopServer(server);
  }
  writeFileSync(autoConf, original);
  return {
    baseBackup: { id: plan.base.id, time: plan.base.time },
    walFiles: needed.wal.length + received,
    stopLsn: stop ? formatLsn(stop.lsn) : undefined,
    recoveredTo,
    durationMs: Date.now() - started,
  };
}

function startServer(
  options: PhysicalRestoreOptions,
  port: number,
  socketDir: string,
  hba: string,
): ChildProcess {
  const args = ['-D', options.dataDir, '-c', `port=${port}`, '-c', 'listen_addresses='];
  args.push(
    '-c',
    `unix_socket_directories=${socketDir}`,
    '-c',
    `hba_file=${hba}`,
    '-c',
    'logging_collector=off',
  );
  const log: string[] = [];
  const child = spawn(findPostgresBinary('postgres'), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG'))),
      LC_ALL: 'C',
    },
  });
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  (child as ChildProcess & { recentLog: string[] }).recentLog = log;
  return child;
}

async function waitUntilPromoted(sql: postgres.Sql, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60 * 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      const log = (server as ChildProcess & { recentLog: string[] }).recentLog.join('').trim().split('\n');
      throw new Error(`PostgreSQL stopped while replaying the WAL: ${log.slice(-3).join(' ')}`);
    }
    try {
      const [row] = await sql<{ r: boolean }[]>`select pg_is_in_recovery() as r`;
      if (row && !row.r) return;
    } catch {
      // Not accepting connections yet.
    }
    await sleep(200);
  }
  throw new Error('PostgreSQL did not finish replaying the WAL within an hour.');
}

async function stopServer(server: ChildProcess): Promise<void> {
  const pid = server.pid;
  if (!pid || !isAlive(pid)) return;
  server.kill('SIGINT');
  if (!(await waitForExit(pid, 60_000))) {
    server.kill('SIGKILL');
    await waitForExit(pid, 5_000);
  }
}
