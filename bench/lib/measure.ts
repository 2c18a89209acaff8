import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

/** What one measured step cost. CPU and memory are those of the step's own processes (not the servers'). */
export interface Measurement {
  wallS: number;
  /** user + sys of every process of the step (GNU time: its waited-for descendants). */
  cpuS: number;
  /** CPU the PostgreSQL server spent meanwhile (its backends serve pg_dump, psql, pg_restore). */
  serverCpuS: number;
  /** Largest resident set of any single process of the step. */
  maxRssMb: number;
  /** Bytes the step's processes wrote to files (ru_oublock: temp files and scratch copies included). */
  fsWriteMb: number;
  stdout: string;
  stderr: string;
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** user+sys+children of a process from /proc, in clock ticks; 0 when it is gone. */
function procTicks(pid: number, withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
    return utime! + stime! + (withChildren ? cutime! + cstime! : 0);
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/**
 * CPU ticks of a server and its children so far: the postmaster's own and reaped children's time, plus the
 * running backends' time. Differences of two readings give the CPU the server spent in between.
 */
export function serverTicks(pid: number): Map<number, number> {
  const ticks = new Map<number, number>([[pid, procTicks(pid, true)]]);
  for (const child of childrenOf(pid)) ticks.set(child, procTicks(child, false));
  return ticks;
}

export function serverCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, value] of after) ticks += value - (before.get(pid) ?? 0);
  // Backends that ran before and exited since are in the postmaster's reaped-children time, which already
  // holds their whole life: take back what they had spent before.
  for (const [pid, value] of before) if (!after.has(pid)) ticks -= value;
  return Math.max(0, ticks) / CLOCK_TICKS;
}

const running = new Set<ChildProcess>();

/** Kills every measured step still running (its whole process group). */
export function killRunningSteps(): void {
  for (const child of running) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}

export class StepError extends Error {
  override name = 'StepError';
}

/**
 * Runs a bash script under GNU time in its own process group and measures it. `sync` runs before (not
 * timed), so one step's dirty pages are not written back during the next.
 */
export async function measure(
  label: string,
  script: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; serverPid: number; timeFile: string },
): Promise<Measurement> {
  execFileSync('sync');
  const before = serverTicks(options.serverPid);
  const child = spawn(
    '/usr/bin/time',
    ['-f', '%e %U %S %M %O', '-o', options.timeFile, 'bash', '-c', `set -euo pipefail\n${script}`],
    { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exit) => resolve(exit));
  }).finally(() => running.delete(child));
  const after = serverTicks(options.serverPid);
  const timing = readFileSync(options.timeFile, 'utf8').trim().split('\n').at(-1) ?? '';
  rmSync(options.timeFile, { force: true });
  if (code !== 0) {
    throw new StepError(
      `${label} failed with exit code ${code}:\n${stderr.trim().split('\n').slice(-15).join('\n')}`,
    );
  }
  const [wall, user, sys, rssKb, oublocks] = timing.split(' ').map(Number);
  if ([wall, user, sys, rssKb, oublocks].some((n) => n === undefined || Number.isNaN(n))) {
    throw new StepError(`${label}: cannot read GNU time's output ${JSON.stringify(timing)}.`);
  }
  return {
    wallS: wall!,
    cpuS: user! + sys!,
    serverCpuS: serverCpuBetween(before, after),
    maxRssMb: rssKb! / 1024,
    fsWriteMb: (oublocks! * 512) / 1024 / 1024,
    stdout,
    stderr,
  };
}

/** Apparent size of the files under a folder (those ending in `suffix`, if given), and how many there are. */
export function treeBytes(dir: string, suffix = ''): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const full = path.join(d, name);
      const info = statSync(full, { throwIfNoEntry: false });
      if (info?.isDirectory()) walk(full);
      else if (info?.isFile() && name.endsWith(suffix)) {
        bytes += info.size;
        files++;
      }
    }
  };
  walk(dir);
  return { bytes, files };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
