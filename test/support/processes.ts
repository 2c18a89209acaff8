import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, isAlive, sleep, waitFor } from '../../src/lib/process.ts';

export const CLI = path.resolve(import.meta.dirname, '../../bin/trendgen.js');

/** Every descendant of `pid` (children, grandchildren…), read from /proc. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** SIGKILL a process and everything under it at once, as a power cut would. */
export function killTree(pid: number): number[] {
  const all = [pid, ...descendants(pid)];
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return all;
}

export interface UpProcess {
  child: ChildProcess;
  baseUrl: string;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `trendgen up` (or `serve`) as a real process tree and waits until /readyz answers 200. */
export async function startUp(
  env: Record<string, string>,
  options: { port?: number; command?: 'up' | 'serve' } = {},
): Promise<UpProcess> {
  const port = options.port ?? (await freePort());
  const command = options.command ?? 'up';
  let output = '';
  const child = spawn(process.execPath, [CLI, command], {
    // Scheduled backups and drills stay off unless a test asks for them: they would fire at the top of the hour.
    env: {
      ...process.env,
      LOG_LEVEL: 'warn',
      BACKUP_SCHEDULE: 'off',
      DRILL_SCHEDULE: 'off',
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  await waitFor(
    `trendgen ${command} to be ready on ${baseUrl}`,
    async () => {
      if (exited) throw new Error(`trendgen ${command} exited early:\n${output}`);
      try {
        // Each poll bounded: a listener that accepts and never answers must not outlast the wait itself.
        const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
        return response.status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    90_000,
    200,
  ).catch((error) => {
    throw new Error(`${(error as Error).message}\n${output}`);
  });
  return {
    child,
    baseUrl,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || !child.pid || !isAlive(child.pid)) return child.exitCode;
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill(signal);
      return await Promise.race([exit, sleep(60_000).then(() => null)]);
    },
  };
}

export interface ServiceProcess {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<number | null>;
}

/**
 * Runs one `trendgen <command>` (worker, scheduler…) as a real process and waits for `ready` in its output
 * (a log line: LOG_LEVEL must let it through).
 */
export async function startService(
  command: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<ServiceProcess> {
  let output = '';
  const child = spawn(process.execPath, [CLI, command], {
    env: { ...process.env, BACKUP_SCHEDULE: 'off', DRILL_SCHEDULE: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  await waitFor(
    `trendgen ${command} to start`,
    () => {
      if (child.exitCode !== null) throw new Error(`trendgen ${command} exited early:\n${output}`);
      return ready.test(output) ? true : undefined;
    },
    90_000,
    100,
  );
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || !child.pid || !isAlive(child.pid)) return child.exitCode;
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      return await Promise.race([exit, sleep(30_000).then(() => null)]);
    },
  };
}
