import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import type { RunAs } from '../../embedded/run-as.ts';
import { freePort, isAlive, sleep, waitForExit } from '../../lib/process.ts';
import type { Repository } from '../repository/index.ts';
import { formatLsn } from './lsn.ts';
import { stopBeforeUnheldObject } from './object-barrier.ts';
import type { PointInTimePlan } from './pitr-plan.ts';
import { extractBase } from './restore-base.ts';
import { fetchWal, stopPoint, walNeeded } from './restore-wal.ts';

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
  /**
   * A physical replication slot made on the promoted server, so every byte of WAL of its new timeline stays
   * until continuous protection's receiver has it (the service may write before protect starts streaming).
   */
  streamSlot?: string;
  /** Runs against the promoted server before it is shut down (drills verify the restored moment here). */
  inspect?: (connect: (database: string) => postgres.Sql) => Promise<void>;
  progress?: (phase: string, detail?: string) => void;
}

export interface PhysicalRestoreResult {
  baseBackup: { id: string; time: string };
  walFiles: number;
  /** The replay's `recovery_target_lsn`, before the first commit left out (undefined: all the WAL fetched was replayed). */
  stopLsn: string | undefined;
  /** The commit time of the last transaction replayed. */
  recoveredTo: string | undefined;
  /**
   * What ended the replay: `object` (the next commit made live an object the vault lacks), `time` (the moment
   * asked for), `end` (the WAL the restore holds).
   */
  stoppedBy: 'object' | 'time' | 'end';
  durationMs: number;
  /** How long the two reads that run side by side took: the base backup's extraction, the WAL's fetch and search. */
  sideBySideMs: { extract: number; wal: number };
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
  const { received, barrier, stop, sideBySideMs } = await baseAndWal(repo, plan, options, {
    walDir,
    needed,
    started,
  });
  const stoppedBy = barrier ? (barrier.atObject ? 'object' : 'end') : plan.target ? 'time' : 'end';
  const autoConf = path.join(options.dataDir, 'postgresql.auto.conf');
  const original = existsSync(autoConf) ? readFileSync(autoConf, 'utf8') : '';
  const recovery = [
    // A hard link, not a 16 MB copy per segment while the replay waits (10 segments: start to stop 0.60 s to
    // 0.48 s); a copy when the scratch folder is on another file system. PostgreSQL keeps a fetched segment
    // in pg_wal and may later recycle it, writing new WAL into the same file: that is safe only because every
    // file in the scratch folder is this restore's own (fetchWal writes them, the receiver's are copied, never
    // linked), and the scratch folder is discarded after the restore.
    `restore_command = 'ln -f "${walDir}/%f" "%p" 2>/dev/null || cp "${walDir}/%f" "%p"'`,
    "recovery_target_action = 'promote'",
    // The path's last timeline: PostgreSQL reads its history file and follows the switches, and on promotion
    // takes a timeline above every recorded one, so names never collide with WAL already in the vault.
    `recovery_target_timeline = '${plan.timeline}'`,
    ...(stop
      ? [
          `recovery_target_lsn = '${formatLsn(stop.lsn)}'`,
          `recovery_target_inclusive = ${stop.inclusive ? 'on' : 'off'}`,
        ]
      : []),
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
  progress(
    'replay',
    stop ? `${stop.inclusive ? 'to' : 'up to'} ${formatLsn(stop.lsn)}` : 'to the end of the WAL fetched',
  );
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
      await settlePromoted(sql, options, socketDir, port);
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
    stoppedBy,
    durationMs: Date.now() - started,
    sideBySideMs,
  };
}

/**
 * The WAL and the base backup are independent reads into different folders: fetched side by side, the restore
 * takes the longer of the two rather than their sum. Both are settled before a failure is reported, so nothing
 * still writes into the scratch folder the caller removes. Where the replay stops is read from the WAL alone:
 * pg_waldump searches it while the extraction goes on.
 */
async function baseAndWal(
  repo: Repository,
  plan: PointInTimePlan,
  options: PhysicalRestoreOptions,
  { walDir, needed, started }: { walDir: string; needed: ReturnType<typeof walNeeded>; started: number },
) {
  const sideBySideMs = { extract: 0, wal: 0 };
  const timed = <T>(promise: Promise<T>, part: keyof typeof sideBySideMs): Promise<T> =>
    promise.finally(() => {
      sideBySideMs[part] = Date.now() - started;
    });
  const [fetched, extracted] = await Promise.allSettled([
    timed(
      fetchWal(repo, plan, needed.wal, walDir, needed.trimmed ? undefined : options.receivedWalDir).then(
        async (received) => {
          const barrier = plan.objectBarrier
            ? await stopBeforeUnheldObject(walDir, plan, plan.objectBarrier)
            : undefined;
          const stop = barrier ? barrier.stop : plan.target ? await stopPoint(walDir, plan) : undefined;
          return { received, barrier, stop };
        },
      ),
      'wal',
    ),
    timed(extractBase(repo, plan, options.dataDir), 'extract'),
  ]);
  if (extracted.status === 'rejected') throw extracted.reason;
  if (fetched.status === 'rejected') throw fetched.reason;
  return { ...fetched.value, sideBySideMs };
}

/** On the promoted server: the service's password, the stream's slot, and the caller's inspection. */
async function settlePromoted(
  sql: postgres.Sql,
  options: PhysicalRestoreOptions,
  socketDir: string,
  port: number,
): Promise<void> {
  if (options.password)
    await sql.unsafe(
      `alter role "${options.superuser.replaceAll('"', '""')}" password '${options.password.replaceAll("'", "''")}'`,
    );
  if (options.streamSlot) {
    await sql`select pg_create_physical_replication_slot(${options.streamSlot}, true)
      where not exists (select 1 from pg_replication_slots where slot_name = ${options.streamSlot})`;
  }
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
}

function startServer(
  options: PhysicalRestoreOptions,
  port: number,
  socketDir: string,
  hba: string,
): ChildProcess {
  const args = ['-D', options.dataDir, '-c', `port=${port}`, '-c', 'listen_addresses='];
  // Recovery starts by making every file of the data directory durable: one syncfs of its file system instead
  // of an fsync per file of the freshly extracted base backup (PostgreSQL 14 and later).
  if (Number(readFileSync(path.join(options.dataDir, 'PG_VERSION'), 'utf8').trim()) >= 14)
    args.push('-c', 'recovery_init_sync_method=syncfs');
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

/** How often the restore asks whether the server has promoted: every poll is a connection attempt at most. */
const PROMOTION_POLL_MS = 50;

async function waitUntilPromoted(sql: postgres.Sql, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60 * 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      const log = (server as ChildProcess & { recentLog: string[] }).recentLog.join('').trim().split('\n');
      // The startup process's FATAL line says why (not the refusals of this restore's own polling connections);
      // the lines after it only say that the server shut down.
      const fatal = log.filter((line) => /\b(FATAL|PANIC):/.test(line) && !line.includes('is starting up'));
      throw new Error(
        `PostgreSQL stopped while replaying the WAL: ${(fatal.length ? fatal : log).slice(-3).join(' ')}`,
      );
    }
    try {
      const [row] = await sql<{ r: boolean }[]>`select pg_is_in_recovery() as r`;
      if (row && !row.r) return;
    } catch {
      // Not accepting connections yet.
    }
    await sleep(PROMOTION_POLL_MS);
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
