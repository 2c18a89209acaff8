import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { ensureSecretFile, writeFileAtomicSync } from '../lib/files.ts';
import {
  freePort,
  isAlive,
  isPortFree,
  isProcessNamed,
  sleep,
  waitFor,
  waitForExit,
} from '../lib/process.ts';
import { findPostgresBinary } from './binaries.ts';
import { type RunAs, runAsFor } from './run-as.ts';

export interface PostgresOptions {
  /** The folder that holds postgres/, run/, logs/ and secrets/ (DATA_DIR for the service). */
  root: string;
  user: string;
  database: string;
  /** 0 picks a free port (the previous one when it is still free). */
  port: number;
  /** Extra `-c name=value` server settings, for tests. */
  settings?: Record<string, string>;
}

export interface RunningPostgres {
  pid: number;
  port: number;
  url: string;
}

const UNIX_SOCKET_PATH_MAX = 100;

export class EmbeddedPostgres {
  readonly dataDir: string;
  readonly runDir: string;
  readonly logFile: string;
  readonly passwordFile: string;
  readonly portFile: string;
  private child: ChildProcess | undefined;

  constructor(readonly options: PostgresOptions) {
    this.dataDir = path.join(options.root, 'postgres');
    this.runDir = path.join(options.root, 'run');
    this.logFile = path.join(options.root, 'logs', 'postgres.log');
    this.passwordFile = path.join(options.root, 'secrets', 'postgres-password');
    this.portFile = path.join(this.runDir, 'postgres.port');
  }

  private get runAs(): RunAs | undefined {
    return runAsFor('postgres', this.options.root);
  }

  url(port: number, database = this.options.database): string {
    const password = readFileSync(this.passwordFile, 'utf8').trim();
    return `postgres://${this.options.user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  }

  /** The instance serving this data directory, if one runs (started by `up` or by another command). */
  findRunning(): RunningPostgres | undefined {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return undefined;
    const lines = readFileSync(pidFile, 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    const status = lines[7]?.trim();
    if (!pid || !port || !isProcessNamed(pid, 'postgres')) return undefined;
    if (status !== 'ready') return undefined;
    return { pid, port, url: this.url(port) };
  }

  isInitialized(): boolean {
    return existsSync(path.join(this.dataDir, 'PG_VERSION'));
  }

  /** initdb with data checksums and password authentication; safe to call again after a crash mid-way. */
  initialize(): void {
    if (this.isInitialized()) return;
    const runAs = this.runAs;
    for (const dir of [
      this.options.root,
      path.join(this.options.root, 'logs'),
      path.join(this.options.root, 'secrets'),
    ]) {
      mkdirSync(dir, { recursive: true });
    }
    chmodSync(path.join(this.options.root, 'secrets'), 0o700);
    const password = ensureSecretFile(this.passwordFile);
    // A crash during an earlier initdb leaves a half-made folder without PG_VERSION: start over.
    rmSync(this.dataDir, { recursive: true, force: true });
    mkdirSync(this.dataDir, { mode: 0o700 });
    const pwFile = path.join(this.options.root, 'run', '.initdb-pw');
    mkdirSync(path.dirname(pwFile), { recursive: true });
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    if (runAs) {
      chownSync(this.dataDir, runAs.uid, runAs.gid);
      chownSync(pwFile, runAs.uid, runAs.gid);
    }
    try {
      execFileSync(
        findPostgresBinary('initdb'),
        [
          '--pgdata',
          this.dataDir,
          '--username',
          this.options.user,
          '--pwfile',
          pwFile,
          '--auth',
          'scram-sha-256',
          '--data-checksums',
          '--encoding',
          'UTF8',
          '--no-locale',
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
          env: cleanEnv(),
        },
      );
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
      rmSync(this.dataDir, { recursive: true, force: true });
      throw new Error(`initdb failed for ${this.dataDir}: ${stderr || (error as Error).message}`);
    } finally {
      rmSync(pwFile, { force: true });
    }
  }

  private async choosePort(): Promise<number> {
    if (this.options.port) return this.options.port;
    if (existsSync(this.portFile)) {
      const previous = Number(readFileSync(this.portFile, 'utf8'));
      if (previous && (await isPortFree(previous))) return previous;
    }
    return await freePort();
  }

  /** A postmaster.pid whose process is gone (or is another program now) would stop the server from starting. */
  private removeStalePidFile(): void {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (pid && isProcessNamed(pid, 'postgres')) {
      throw new Error(
        `PostgreSQL (pid ${pid}) is already running on ${this.dataDir} but is not ready; stop it or wait for it.`,
      );
    }
    rmSync(pidFile, { force: true });
  }

  /**
   * Starts the server as a child of this process (in its own process group, so a Ctrl-C reaches the
   * supervisor first and shutdown happens in order) and waits until it accepts connections.
   */
  async start(): Promise<RunningPostgres> {
    this.initialize();
    this.removeStalePidFile();
    const runAs = this.runAs;
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(path.dirname(this.logFile), { recursive: true });
    if (runAs) chownSync(this.runDir, runAs.uid, runAs.gid);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await this.choosePort();
      const socketDir =
        path.join(this.runDir, `.s.PGSQL.${port}`).length < UNIX_SOCKET_PATH_MAX ? this.runDir : '';
      const settings: Record<string, string> = {
        listen_addresses: '127.0.0.1',
        port: String(port),
        unix_socket_directories: socketDir,
        fsync: 'on',
        synchronous_commit: 'on',
        full_page_writes: 'on',
        wal_level: 'replica',
        max_wal_senders: '10',
        logging_collector: 'off',
        ...this.options.settings,
      };
      const args = ['-D', this.dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
      const log = openSync(this.logFile, 'a');
      const child = spawn(findPostgresBinary('postgres'), args, {
        stdio: ['ignore', log, log],
        detached: true,
        env: cleanEnv(),
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      });
      closeSync(log);
      child.unref();
      this.child = child;
      let exitCode: number | null | undefined;
      child.once('exit', (code) => {
        exitCode = code;
      });
      try {
        const running = await waitFor(
          'PostgreSQL to accept connections',
          () => {
            if (exitCode !== undefined) throw new Error(`PostgreSQL exited with code ${exitCode}`);
            const found = this.findRunning();
            return found && found.pid === child.pid ? found : undefined;
          },
          60_000,
        );
        writeFileAtomicSync(this.portFile, String(port));
        return running;
      } catch (error) {
        lastError = error;
        if (child.pid && isAlive(child.pid)) child.kill('SIGKILL');
        await sleep(200);
        if (this.options.port) break;
      }
    }
    throw new Error(
      `PostgreSQL did not start (log: ${this.logFile}): ${(lastError as Error).message}.${tailOf(this.logFile)}`,
    );
  }

  /** Fast shutdown: active transactions roll back, committed data is already on disk. */
  async stop(timeoutMs = 30_000): Promise<void> {
    const running = this.findRunning();
    const pid = running?.pid ?? this.child?.pid;
    if (!pid || !isAlive(pid)) return;
    process.kill(pid, 'SIGINT');
    if (!(await waitForExit(pid, timeoutMs))) {
      process.kill(pid, 'SIGQUIT');
      await waitForExit(pid, 5_000);
    }
  }
}

function tailOf(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n').slice(-5);
    return `\nLast lines of the log:\n${lines.join('\n')}`;
  } catch {
    return '';
  }
}

/** The server must not inherit PG* variables meant for clients. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.LC_ALL = 'C';
  return env;
}
