import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ensureSecretFile, writeFileAtomicSync } from '../lib/files.ts';
import { freePort, isAlive, isPortFree, isProcessNamed, sleep, waitForExit } from '../lib/process.ts';
import { findRedisBinary } from './binaries.ts';

export interface RedisOptions {
  root: string;
  port: number;
  appendfsync: 'everysec' | 'always';
  /**
   * `aof` (the default): the service's Redis, AOF on. `none`: a throwaway server that keeps nothing and
   * loads `redis/dump.rdb` when one is there (the vault reads and checks backups with it).
   */
  persistence?: 'aof' | 'none';
  /** Lines appended to the server's config. */
  extraConfig?: string[];
}

export interface RunningRedis {
  pid: number;
  port: number;
  url: string;
}

/** Sends one inline command and reads the first reply line: enough to probe a server without a client library. */
export async function redisProbe(port: number, password: string, command = 'PING'): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer'));
    }, 2000);
    socket.on('connect', () => socket.write(`AUTH ${password}\r\n${command}\r\n`));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      const lines = data.split('\r\n');
      if (lines.length >= 3) {
        clearTimeout(timer);
        socket.destroy();
        resolve(lines[1]!);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export class EmbeddedRedis {
  readonly dataDir: string;
  readonly runDir: string;
  readonly pidFile: string;
  readonly portFile: string;
  readonly logFile: string;
  readonly passwordFile: string;
  private child: ChildProcess | undefined;

  constructor(readonly options: RedisOptions) {
    this.dataDir = path.join(options.root, 'redis');
    this.runDir = path.join(options.root, 'run');
    this.pidFile = path.join(this.runDir, 'redis.pid');
    this.portFile = path.join(this.runDir, 'redis.port');
    this.logFile = path.join(options.root, 'logs', 'redis.log');
    this.passwordFile = path.join(options.root, 'secrets', 'redis-password');
  }

  private password(): string {
    mkdirSync(path.dirname(this.passwordFile), { recursive: true });
    chmodSync(path.dirname(this.passwordFile), 0o700);
    return ensureSecretFile(this.passwordFile);
  }

  url(port: number): string {
    return `redis://:${encodeURIComponent(this.password())}@127.0.0.1:${port}/0`;
  }

  async findRunning(): Promise<RunningRedis | undefined> {
    if (!existsSync(this.pidFile) || !existsSync(this.portFile)) return undefined;
    const pid = Number(readFileSync(this.pidFile, 'utf8'));
    const port = Number(readFileSync(this.portFile, 'utf8'));
    if (!pid || !port || !isProcessNamed(pid, 'redis')) return undefined;
    try {
      if ((await redisProbe(port, this.password())) !== '+PONG') return undefined;
    } catch {
      return undefined;
    }
    return { pid, port, url: this.url(port) };
  }

  private async choosePort(): Promise<number> {
    if (this.options.port) return this.options.port;
    if (existsSync(this.portFile)) {
      const previous = Number(readFileSync(this.portFile, 'utf8'));
      if (previous && (await isPortFree(previous))) return previous;
    }
    return await freePort();
  }

  /** Starts redis-server with AOF on, as a child in its own process group, and waits for PONG. */
  async start(): Promise<RunningRedis> {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(path.dirname(this.logFile), { recursive: true });
    const password = this.password();
    if (existsSync(this.pidFile)) {
      const pid = Number(readFileSync(this.pidFile, 'utf8'));
      if (pid && isProcessNamed(pid, 'redis')) {
        throw new Error(
          `Redis (pid ${pid}) already runs on ${this.dataDir} but does not answer; stop it first.`,
        );
      }
      rmSync(this.pidFile, { force: true });
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await this.choosePort();
      writeFileAtomicSync(this.portFile, String(port));
      // Settings go through a 0600 file so that the password never shows in `ps`.
      const configFile = path.join(this.runDir, 'redis.conf');
      const settings = [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir "${this.dataDir}"`,
        ...(this.options.persistence === 'none'
          ? ['dbfilename dump.rdb', 'appendonly no', 'save ""']
          : [
              'appendonly yes',
              `appendfsync ${this.options.appendfsync}`,
              'aof-use-rdb-preamble yes',
              'save 3600 1 300 100 60 10000',
            ]),
        `requirepass "${password}"`,
        `pidfile "${this.pidFile}"`,
        'daemonize no',
        // Backups take an RDB over the replication protocol; the default 5 s wait for more replicas only slows them.
        'repl-diskless-sync-delay 0',
        'logfile ""',
        ...(this.options.extraConfig ?? []),
      ];
      writeFileAtomicSync(configFile, `${settings.join('\n')}\n`, 0o600);
      const args = [configFile];
      const log = openSync(this.logFile, 'a');
      const child = spawn(findRedisBinary(), args, { stdio: ['ignore', log, log], detached: true });
      closeSync(log);
      child.unref();
      this.child = child;
      let exitCode: number | null | undefined;
      child.once('exit', (code) => {
        exitCode = code;
      });
      try {
        return await this.answering(child, password, () => exitCode);
      } catch (error) {
        lastError = error;
        if (child.pid && isAlive(child.pid)) child.kill('SIGKILL');
        await sleep(200);
        if (this.options.port) break;
      }
    }
    throw new Error(
      `Redis did not start (log: ${this.logFile}): ${(lastError as Error).message}. ${this.logTail()}`.trim(),
    );
  }

  /** Waits for PONG; loading a large RDB answers LOADING for a while, and that is waited out as long as it lasts. */
  private async answering(
    child: ChildProcess,
    password: string,
    exitCode: () => number | null | undefined,
  ): Promise<RunningRedis> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exitCode() !== undefined) throw new Error(`redis-server exited with code ${exitCode()}`);
      const found = await this.findRunning();
      if (found && found.pid === child.pid) return found;
      const port = Number(readFileSync(this.portFile, 'utf8'));
      const loading = (await redisProbe(port, password).catch(() => '')).startsWith('-LOADING');
      if (!loading && Date.now() > deadline)
        throw new Error('Timed out after 30 s waiting for Redis to answer PING');
      await sleep(50);
    }
  }

  private logTail(): string {
    try {
      return readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-3).join(' ');
    } catch {
      return '';
    }
  }

  /** SIGTERM makes Redis fsync its AOF and exit. */
  async stop(timeoutMs = 30_000): Promise<void> {
    const running = await this.findRunning();
    const pid = running?.pid ?? this.child?.pid;
    if (!pid || !isAlive(pid)) return;
    process.kill(pid, 'SIGTERM');
    if (!(await waitForExit(pid, timeoutMs))) {
      process.kill(pid, 'SIGKILL');
      await waitForExit(pid, 5_000);
    }
  }
}
