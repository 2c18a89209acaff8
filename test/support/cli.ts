import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from '../../src/lib/process.ts';
import { CLI, descendants, killTree } from './processes.ts';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** SIGKILLs the process mid-way (a crash the test makes on purpose). */
  killAfterMs?: number;
  /**
   * A command that has not ended by then is taken as hung: its process tree and Node's own report (JavaScript
   * stack, open handles) are appended to stderr, then the tree is SIGKILLed, so the test fails saying where.
   */
  deadlineMs?: number;
  cwd?: string;
}

/** Runs `trendgen …` as a real process. */
export function runCli(
  args: string[],
  env: Record<string, string>,
  options: CliOptions = {},
): Promise<CliResult> & { child: ChildProcess } {
  const reports =
    options.deadlineMs !== undefined ? mkdtempSync(path.join(tmpdir(), 'cli-report-')) : undefined;
  const reportOptions = reports
    ? `--report-on-signal --report-signal=SIGUSR2 --report-directory=${reports} --report-compact`
    : '';
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      ...process.env,
      ...env,
      ...(reports ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${reportOptions}`.trim() } : {}),
    },
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
  const killer =
    options.killAfterMs !== undefined
      ? setTimeout(() => child.kill('SIGKILL'), options.killAfterMs)
      : undefined;
  let hung = '';
  const watchdog =
    reports && options.deadlineMs !== undefined
      ? setTimeout(async () => {
          hung = await describeHung(child.pid!, reports, args, options.deadlineMs!);
          killTree(child.pid!);
        }, options.deadlineMs)
      : undefined;
  const done = new Promise<CliResult>((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      clearTimeout(watchdog);
      if (reports) rmSync(reports, { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr: `${stderr}${hung}` });
    }),
  );
  return Object.assign(done, { child });
}

/** What a hung command was doing: its processes, and the main thread's stack and handles from Node's report. */
async function describeHung(
  pid: number,
  reports: string,
  args: string[],
  deadlineMs: number,
): Promise<string> {
  const lines = [
    `\n\`trendgen ${args.join(' ')}\` had not ended after ${deadlineMs / 1000} s; its processes:`,
  ];
  try {
    const pids = [pid, ...descendants(pid)].join(',');
    lines.push(
      execFileSync('ps', ['-o', 'pid=,ppid=,etime=,stat=,args=', '-p', pids], { encoding: 'utf8' }).trim(),
    );
  } catch {
    // All gone meanwhile (ps exits non-zero when no pid is left).
  }
  try {
    process.kill(pid, 'SIGUSR2');
    await sleep(3000);
    for (const name of readdirSync(reports)) {
      const report = JSON.parse(readFileSync(path.join(reports, name), 'utf8'));
      lines.push(`JavaScript stack: ${JSON.stringify(report.javascriptStack?.stack ?? [])}`);
      // libuv's own machinery (async, check, signal…) says nothing about what the command waits for.
      const waitingOn = (report.libuv ?? []).filter(
        (handle: { type: string; is_active?: boolean }) =>
          handle.is_active && !['async', 'check', 'prepare', 'idle', 'signal', 'loop'].includes(handle.type),
      );
      lines.push(`waiting on: ${JSON.stringify(waitingOn)}`);
    }
  } catch (error) {
    lines.push(`no report: ${(error as Error).message}`);
  }
  return `${lines.join('\n')}\n`;
}
