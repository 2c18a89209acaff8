import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { formatConnectionUrl, parseConnectionUrl } from '../../lib/connection-url.ts';
import { sleep } from '../../lib/process.ts';
import { libpqConnection } from '../sources/postgres-client.ts';

/** The name the receiver streams under: its replication slot, and the standby name synchronous mode waits for. */
export const WAL_RECEIVER_NAME = 'trendgen_wal';

export type ReceiverState = 'starting' | 'streaming' | 'stopped' | 'failed';

/** The database URL with the application name that `synchronous_standby_names` and pg_stat_replication see. */
export function receiverConnection(databaseUrl: string): ReturnType<typeof libpqConnection> {
  // Parsed by hand: a failover URL's host list (`h1:5432,h2:5432`) is no WHATWG URL.
  const url = parseConnectionUrl(databaseUrl, { multiHost: true });
  url.params.set('application_name', WAL_RECEIVER_NAME);
  return libpqConnection(formatConnectionUrl(url));
}

/**
 * Keeps `pg_receivewal` running into `walDir` with a physical replication slot, so the server keeps every
 * segment until the receiver has it (bounded by the server's `max_slot_wal_keep_size`). The receiver runs in
 * synchronous mode always: it fsyncs each write and reports its flush position at once, which is what lets
 * the shipper know how far the file it reads is durable; only `synchronous_standby_names` makes commits wait.
 */
export class WalReceiver {
  state: ReceiverState = 'stopped';
  lastError: string | undefined;
  private child: ChildProcess | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly options: {
      databaseUrl: string;
      walDir: string;
      /** The folder whose disk the receiver writes on (BACKUP_DIR), named when that disk is full. */
      backupDir?: string;
      /** The slot's WAL was removed before the receiver read it: the stream has a gap. */
      onGap?: (reason: string) => void;
      log?: (message: string) => void;
    },
  ) {}

  start(): void {
    this.stopping = false;
    mkdirSync(this.options.walDir, { recursive: true, mode: 0o700 });
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.child?.kill('SIGTERM');
    await this.loop;
    this.loop = undefined;
    this.state = 'stopped';
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (!this.stopping) {
      this.state = 'starting';
      const started = Date.now();
      const error = await this.once();
      if (this.stopping) break;
      this.state = 'failed';
      this.lastError = this.explained(error);
      this.options.log?.(`The WAL receiver stopped: ${error}`);
      if (/has already been removed|invalidated|wal_status|does not exist/i.test(error)) {
        this.options.onGap?.(error);
      }
      await this.removeUnpadded(error);
      // A full disk is freed by an operator at any moment: retrying every second or two costs one failed
      // write, and the stream resumes as soon as there is room (the slot keeps the WAL meanwhile).
      const cap = isDiskFull(error) ? 2_000 : 10_000;
      backoff = Date.now() - started > 30_000 ? 500 : Math.min(backoff * 2, cap);
      await sleep(backoff);
    }
  }

  /** One run of pg_receivewal (after making sure the slot exists); resolves with why it ended. */
  private async once(): Promise<string> {
    const { dbname, env, password } = receiverConnection(this.options.databaseUrl);
    const binary = findPostgresBinary('pg_receivewal');
    const create = await runTool(
      binary,
      ['--create-slot', '--if-not-exists', '-S', WAL_RECEIVER_NAME, '-d', dbname],
      env,
    );
    if (create.code !== 0)
      return scrubbed(create.stderr, password) || 'the replication slot could not be created.';
    // Stopped while the slot was being made: no pg_receivewal may start after stop(), which would wait for it.
    if (this.stopping) return 'stopped.';
    const args = ['-D', this.options.walDir, '-S', WAL_RECEIVER_NAME, '--synchronous', '-n', '-d', dbname];
    const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.state = 'streaming';
    // The error of an earlier run no longer describes a receiver that has been streaming for a while.
    const settled = setTimeout(() => {
      if (this.child === child) this.lastError = undefined;
    }, 5_000);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const code = await new Promise<number | null>((resolve) => {
      child.once('error', (error) => {
        stderr += error.message;
        resolve(-1);
      });
      child.once('close', (exit) => resolve(exit));
    });
    clearTimeout(settled);
    this.child = undefined;
    return scrubbed(stderr, password) || `pg_receivewal exited with code ${code}.`;
  }

  /** What status, /readyz and doctor show: a full backup disk in one sentence that names the folder. */
  private explained(error: string): string {
    if (!isDiskFull(error)) return error;
    const dir = this.options.backupDir ?? this.options.walDir;
    return `The disk under ${dir} is full, so the WAL receiver cannot write: free space or move BACKUP_DIR elsewhere.`;
  }

  /**
   * pg_receivewal writes a new segment's full size in zeros before any WAL goes in, and does not remove the
   * file when that fails (a full disk): the short file then makes every later run refuse to start ("has N
   * bytes, should be 0 or …"). A short file never held WAL, so it is removed and the stream resumes.
   */
  private async removeUnpadded(error: string): Promise<void> {
    const short = /write-ahead log file "([^"]+)" has \d+ bytes?, should be 0 or \d+/.exec(error);
    if (!short) return;
    const file = path.join(this.options.walDir, path.basename(short[1]!));
    await unlink(file).catch(() => {});
    this.options.log?.(`removed ${file}: pg_receivewal left it short when its disk filled`);
  }
}

function isDiskFull(error: string): boolean {
  return /No space left on device|Disk quota exceeded/i.test(error);
}

function scrubbed(stderr: string, secret: string): string {
  let tail = stderr.trim().split('\n').slice(-3).join(' ').replace(/\s+/g, ' ');
  if (secret) tail = tail.replaceAll(secret, '***');
  return tail;
}

function runTool(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (error) => resolve({ code: -1, stderr: error.message }));
    child.once('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}
