import { type ChildProcess, spawn } from 'node:child_process';
import { CLI } from './processes.ts';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `trendgen …` as a real process; `killAfterMs` SIGKILLs it mid-way. */
export function runCli(
  args: string[],
  env: Record<string, string>,
  options: { killAfterMs?: number; cwd?: string } = {},
): Promise<CliResult> & { child: ChildProcess } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => {
    stdout += c;
  });
  child.stderr!.on('data', (c) => {
    stderr += c;
  });
  const timer =
    options.killAfterMs !== undefined
      ? setTimeout(() => child.kill('SIGKILL'), options.killAfterMs)
      : undefined;
  const done = new Promise<CliResult>((resolve) =>
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return Object.assign(done, { child });
}
