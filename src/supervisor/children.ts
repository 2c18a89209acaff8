import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { allocatorEnvironment } from '../lib/allocator.ts';
import { isHeartbeat } from '../lib/liveness.ts';
import { waitForExit } from '../lib/process.ts';

/** A child that dies sooner than this after its start counts as crash-looping and is restarted with backoff. */
const CRASH_LOOP_MS = 5_000;

const CLI_ENTRY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/trendgen.js');

/**
 * Before the first heartbeat a child only loads the compiled CLI and reads its configuration (every command
 * that `up` runs starts its heartbeats before connecting or migrating): well under a second, a few on a loaded
 * machine.
 */
const FIRST_HEARTBEAT_GRACE_MS = 15_000;

interface Managed {
  args: string[];
  child: ChildProcess | undefined;
  restarts: number;
  lastStart: number;
  /** When the child last said it was alive; undefined until its first heartbeat. */
  lastBeat: number | undefined;
}

export interface ChildrenOptions {
  /** A child whose heartbeats stop, or that reports a stuck thread pool, this long is killed and restarted. */
  livenessTimeoutMs: number;
  /** The script the children run (the trendgen CLI; tests give another). */
  entry?: string;
}

/**
 * The service processes of `up` (`trendgen serve`, `worker`, `scheduler`), each restarted when it dies: at once
 * when it had started properly, with backoff while it keeps dying right after its start.
 */
export class SupervisedChildren {
  private readonly managed: Managed[];
  private stopping = false;
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    commands: string[][],
    private readonly logger: Logger,
    /** Brings the services up and gives the environment a child starts with; a child waits for it. */
    private readonly prepare: () => Promise<Record<string, string>>,
    private readonly options: ChildrenOptions = { livenessTimeoutMs: 30_000 },
  ) {
    this.managed = commands.map((args) => ({
      args,
      child: undefined,
      restarts: 0,
      lastStart: 0,
      lastBeat: undefined,
    }));
    this.watchdog = setInterval(() => this.checkHeartbeats(), 500);
    this.watchdog.unref();
  }

  startAll(env: Record<string, string>): void {
    for (const m of this.managed) this.start(m, env);
  }

  /** A child that stopped sending heartbeats has a stuck event loop: only SIGKILL ends it. */
  private checkHeartbeats(): void {
    const now = Date.now();
    for (const m of this.managed) {
      if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) continue;
      const limit =
        this.options.livenessTimeoutMs + (m.lastBeat === undefined ? FIRST_HEARTBEAT_GRACE_MS : 0);
      const silentMs = now - (m.lastBeat ?? m.lastStart);
      if (silentMs > limit)
        this.killStuck(
          m,
          `it sent no heartbeat for ${Math.round(silentMs / 1000)} s (its event loop is stuck)`,
        );
    }
  }

  private killStuck(m: Managed, why: string): void {
    if (this.stopping || !m.child?.pid || m.child.killed) return;
    this.logger.error({ command: m.args.join(' '), pid: m.child.pid }, `child is stuck: ${why}; killing it`);
    m.child.kill('SIGKILL');
  }

  private start(m: Managed, env: Record<string, string>): void {
    m.lastStart = Date.now();
    m.lastBeat = undefined;
    const child = spawn(process.execPath, [this.options.entry ?? CLI_ENTRY, ...m.args], {
      // The IPC channel carries the child's heartbeats.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...allocatorEnvironment(process.env), ...process.env, ...env, TRENDGEN_SUPERVISED: '1' },
    });
    m.child = child;
    child.on('message', (message) => {
      if (!isHeartbeat(message) || m.child !== child) return;
      m.lastBeat = Date.now();
      if (!message.ok) this.killStuck(m, message.problem ?? 'it reported itself stuck');
    });
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      const crashLoop = Date.now() - m.lastStart < CRASH_LOOP_MS;
      m.restarts = crashLoop ? m.restarts + 1 : 0;
      const delay = crashLoop ? Math.min(30_000, 250 * 2 ** Math.min(m.restarts, 7)) : 0;
      this.logger.error(
        { command: m.args.join(' '), code, signal, restartInMs: delay },
        'child exited; restarting',
      );
      this.restart(m, delay);
    });
  }

  /** A child comes back only on top of running services; while they cannot start, keep trying. */
  private restart(m: Managed, delay: number): void {
    setTimeout(() => {
      if (this.stopping) return;
      this.prepare()
        .then((env) => {
          if (!this.stopping) this.start(m, env);
        })
        .catch((error) => {
          this.logger.error({ err: error }, 'could not restart services; trying again');
          this.restart(m, Math.min(30_000, Math.max(1_000, delay * 2)));
        });
    }, delay);
  }

  /** SIGTERM to every child, then up to 20 s each to drain before SIGKILL. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.watchdog);
    for (const m of this.managed) if (m.child?.pid) m.child.kill('SIGTERM');
    for (const m of this.managed) {
      if (m.child?.pid && !(await waitForExit(m.child.pid, 20_000))) m.child.kill('SIGKILL');
    }
  }
}
