import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { RunAs } from '../../src/embedded/run-as.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

const children = new Set<ChildProcess>();

/** Kills every child this module started that still runs (its process group). */
export function killChildren(): void {
  for (const child of children) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

/**
 * Starts a program in its own process group (so a cleanup can end it and what it started), as `runAs` when
 * given: PostgreSQL's own tools and pgBackRest refuse to run as root, and must own the files they write.
 */
export function start(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; runAs?: RunAs | undefined; cwd?: string } = {},
): ChildProcess {
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd ?? '/',
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
  });
  children.add(child);
  child.once('close', () => children.delete(child));
  return child;
}

/** Runs a program to its end; a non-zero exit throws with the last lines of its stderr. */
export async function run(
  command: string,
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    runAs?: RunAs | undefined;
    cwd?: string;
    allowFail?: boolean;
    onStart?: (child: ChildProcess) => void;
  } = {},
): Promise<RunResult> {
  const started = performance.now();
  const child = start(command, args, options);
  options.onStart?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number>((resolve) => {
    child.once('error', (error) => {
      stderr += error.message;
      resolve(-1);
    });
    child.once('close', (exit) => resolve(exit ?? -1));
  });
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0 && !options.allowFail) {
    const tail = `${stderr}\n${stdout}`.trim().split('\n').slice(-12).join('\n');
    throw new Error(
      `${path.basename(command)} ${args.slice(0, 6).join(' ')} failed (exit ${code}):\n${tail}`,
    );
  }
  return { code, stdout, stderr, seconds };
}

/** A folder owned by `runAs` (when given), created with its parents. */
export function ownedDir(dir: string, runAs: RunAs | undefined, mode = 0o700): string {
  mkdirSync(dir, { recursive: true, mode });
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  return dir;
}

/** Gives a whole tree to `runAs`. */
export function chownTree(dir: string, runAs: RunAs | undefined): void {
  if (!runAs) return;
  chownSync(dir, runAs.uid, runAs.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(full, runAs);
    else chownSync(full, runAs.uid, runAs.gid);
  }
}

export function percentile(values: number[], p: number): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}
