import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { waitForExit } from '../lib/process.ts';

/** A child that dies sooner than this after its start counts as crash-looping and is restarted with backoff. */
const CRASH_LOOP_MS = 5_000;

const CLI_ENTRY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/trendgen.js');

interface Managed {
  args: string[];
  child: ChildProcess | undefined;
  restarts: number;
  lastStart: number;
}

/**
 * The service processes of `up` (`trendgen serve`, `worker`, `scheduler`), each restarted when it dies: at once
 * when it had started properly, with backoff while it keeps dying right after its start.
 */
export class SupervisedChildren {
  private readonly managed: Managed[];
  private stopping = false;

  constructor(
    commands: string[][],
    private readonly logger: Logger,
    /** Brings the services up and gives the environment a child starts with; a child waits for it. */
    private readonly prepare: () => Promise<Record<string, string>>,
  ) {
    this.managed = commands.map((args) => ({ args, child: undefined, restarts: 0, lastStart: 0 }));
  }

  startAll(env: Record<string, string>): void {
    for (const m of this.managed) this.start(m, env);
  }

  private start(m: Managed, env: Record<string, string>): void {
    m.lastStart = Date.now();
    const child = spawn(process.execPath, [CLI_ENTRY, ...m.args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ...env, TRENDGEN_SUPERVISED: '1' },
    });
    m.child = child;
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
    for (const m of this.managed) if (m.child?.pid) m.child.kill('SIGTERM');
    for (const m of this.managed) {
      if (m.child?.pid && !(await waitForExit(m.child.pid, 20_000))) m.child.kill('SIGKILL');
    }
  }
}
