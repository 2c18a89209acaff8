import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isAlive, sleep, waitFor, waitForExit } from '../../../src/lib/process.ts';
import { runCli } from '../../support/cli.ts';
import { walkFiles } from '../../support/files.ts';
import { descendants, killTree, startUp, type UpProcess } from '../../support/processes.ts';
import { tempDir } from '../../support/temp.ts';
import { sha256 } from './load.ts';

/** A restore here takes seconds; one that takes minutes is hung, and is stopped while the test can still say where. */
const RESTORE_DEADLINE_MS = 180_000;

export type Role = 'serve' | 'worker' | 'scheduler' | 'postgres' | 'redis';

/**
 * The whole service as users run it: `trendgen up` with its embedded PostgreSQL and Redis and its serve,
 * worker and scheduler children, in a temp folder, on a free port. Faults are done to it from outside.
 */
export class FaultSystem {
  readonly env: Record<string, string>;
  readonly admin: Record<string, string>;
  readonly client: Record<string, string>;
  private up: UpProcess | undefined;
  private readonly temp: { dir: string; remove(): void };

  constructor(name: string, extraEnv: Record<string, string> = {}) {
    this.temp = tempDir(`fault-${name}`);
    const adminToken = randomBytes(24).toString('hex');
    const clientToken = randomBytes(24).toString('hex');
    this.env = {
      DATA_DIR: path.join(this.temp.dir, 'data'),
      PROMPTS_DIR: path.join(this.temp.dir, 'prompts'),
      BACKUP_DIR: path.join(this.temp.dir, 'backups'),
      ADMIN_TOKEN: adminToken,
      API_TOKEN: clientToken,
      IMAGE_PROVIDER: 'local',
      WORKER_CONCURRENCY: '2',
      GENERATION_LEASE_SECONDS: '3',
      GENERATION_MAX_ATTEMPTS: '50',
      RECONCILE_INTERVAL_SECONDS: '1',
      PROMPTS_RESCAN_SECONDS: '1',
      LOG_LEVEL: 'fatal',
      ...extraEnv,
    };
    this.admin = { authorization: `Bearer ${adminToken}` };
    this.client = { authorization: `Bearer ${clientToken}` };
  }

  get dir(): string {
    return this.temp.dir;
  }

  get baseUrl(): string {
    if (!this.up) throw new Error('the system is not running');
    return this.up.baseUrl;
  }

  get promptsDir(): string {
    return this.env.PROMPTS_DIR!;
  }

  async start(): Promise<void> {
    const port = this.up ? Number(new URL(this.up.baseUrl).port) : undefined;
    this.up = await startUp(this.env, port ? { port } : {});
  }

  /** The pid of one part of the running system, read from /proc and the embedded servers' pid files. */
  pidOf(role: Role): number | undefined {
    if (role === 'postgres')
      return this.pidFromFile(path.join(this.env.DATA_DIR!, 'postgres', 'postmaster.pid'));
    if (role === 'redis') return this.pidFromFile(path.join(this.env.DATA_DIR!, 'run', 'redis.pid'));
    const root = this.up?.child.pid;
    if (!root) return undefined;
    return descendants(root).find((pid) => {
      try {
        const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return args.includes(role) && args.some((arg) => arg.endsWith('trendgen.js'));
      } catch {
        return false;
      }
    });
  }

  private pidFromFile(file: string): number | undefined {
    try {
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      return pid && isAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGKILL one part; the supervisor is expected to bring it back on its own. */
  async kill(role: Role): Promise<void> {
    const pid = this.pidOf(role);
    if (!pid) throw new Error(`no ${role} process is running`);
    // PostgreSQL's backends are the postmaster's children: a power cut takes them too.
    for (const victim of role === 'postgres' ? killTree(pid) : [pid]) {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await waitForExit(pid, 10_000);
  }

  /** SIGKILL everything at once, as a power cut would, then start `trendgen up` again as an operator would. */
  async killEverything(): Promise<void> {
    const victims = [
      ...(this.up?.child.pid ? killTree(this.up.child.pid) : []),
      ...(['postgres', 'redis'] as const).flatMap((role) => {
        const pid = this.pidOf(role);
        return pid ? killTree(pid) : [];
      }),
    ];
    for (const pid of victims) await waitForExit(pid, 10_000);
  }

  /**
   * The data disk dies (BACKUP_DIR is another disk): everything SIGKILLed, DATA_DIR and PROMPTS_DIR gone, then
   * the operator's `trendgen restore latest` and `trendgen up`. Returns the restore's result for the test to read.
   */
  async loseDataDiskAndRestore(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    await this.killEverything();
    rmSync(this.env.DATA_DIR!, { recursive: true, force: true });
    rmSync(this.env.PROMPTS_DIR!, { recursive: true, force: true });
    // Human output: its phase lines on stderr say where a restore that fails or hangs got to.
    const restore = await runCli(['restore', 'latest'], this.env, { deadlineMs: RESTORE_DEADLINE_MS });
    if (restore.code !== 0) return restore;
    await this.start();
    await this.waitHealthy();
    return restore;
  }

  /** Redis loses its data: killed, its AOF and RDB deleted; the supervisor restarts it empty. */
  async wipeRedis(): Promise<void> {
    await this.kill('redis');
    const dir = path.join(this.env.DATA_DIR!, 'redis');
    rmSync(path.join(dir, 'appendonlydir'), { recursive: true, force: true });
    rmSync(path.join(dir, 'dump.rdb'), { force: true });
  }

  /** Every part running again and /readyz answering 200. */
  async waitHealthy(timeoutMs = 120_000): Promise<void> {
    let missing = '';
    await waitFor(
      'the system to be healthy again',
      async () => {
        missing = 'trendgen up';
        if (!this.up || this.up.child.exitCode !== null) return undefined;
        for (const role of ['serve', 'worker', 'scheduler', 'postgres', 'redis'] as const) {
          missing = role;
          if (!this.pidOf(role)) return undefined;
        }
        missing = '/readyz';
        try {
          const response = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
          return response.status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      timeoutMs,
      100,
    ).catch((error) => {
      throw new Error(`${(error as Error).message} Waiting for: ${missing}.\n${this.output().slice(-6000)}`);
    });
  }

  /**
   * I2 on disk: every blob file outside the temp folders hashes to its name, so nothing half-written is
   * visible. Content addressing makes a file checked once safe to skip later.
   */
  checkObjectFiles(): string[] {
    const root = path.join(this.env.DATA_DIR!, 'objects');
    if (!existsSync(root)) return [];
    const bad: string[] = [];
    for (const file of walkFiles(root)) {
      const relative = path.relative(root, file);
      if (relative.startsWith('.tmp') || this.checkedFiles.has(relative)) continue;
      if (path.basename(file).split('.')[0] !== sha256(readFileSync(file))) bad.push(relative);
      else this.checkedFiles.add(relative);
    }
    return bad;
  }

  private readonly checkedFiles = new Set<string>();

  output(): string {
    return this.up?.output() ?? '';
  }

  async stop(): Promise<void> {
    if (this.up) {
      const code = await this.up.stop();
      if (code === null && this.up.child.pid) killTree(this.up.child.pid);
      await sleep(0);
    }
    this.up = undefined;
  }

  async remove(): Promise<void> {
    await this.stop();
    await this.killEverything();
    this.temp.remove();
  }
}
