import { formatBytes } from '../lib/format.ts';

export interface ProgressCounts {
  done?: number;
  total?: number;
  bytes?: number;
}

export type ProgressFn = (phase: string, detail?: string, counts?: ProgressCounts) => void;

/**
 * Human progress on stderr. On a terminal one status line is redrawn (files, bytes, rate, ETA when the
 * total is known); otherwise — logs, cron mail, --json — one line per phase, so output stays readable.
 */
export function progressPrinter(options: { json?: boolean } = {}): ProgressFn & { finish(): void } {
  const tty = Boolean(process.stderr.isTTY);
  const started = Date.now();
  let phase = '';
  let phaseStarted = started;
  let lastDraw = 0;
  /** The newest figures not drawn yet (redraws are throttled): drawn before the line is left, never lost. */
  let undrawn: { detail?: string | undefined; counts?: ProgressCounts | undefined } | undefined;
  const clock = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
  const flush = () => {
    if (undrawn) draw(phase, undrawn.detail, undrawn.counts);
    undrawn = undefined;
  };
  const print = ((name: string, detail?: string, counts?: ProgressCounts) => {
    if (options.json && !tty) return;
    if (name !== phase) {
      if (tty && phase) {
        flush();
        process.stderr.write('\n');
      }
      phase = name;
      phaseStarted = Date.now();
      if (!tty) process.stderr.write(`${clock()} ${name}${detail ? `: ${detail}` : ''}\n`);
    }
    if (!tty) return;
    if (Date.now() - lastDraw < 100) {
      undrawn = { detail, counts };
      return;
    }
    undrawn = undefined;
    draw(name, detail, counts);
  }) as ProgressFn & { finish(): void };
  const draw = (name: string, detail?: string, counts?: ProgressCounts) => {
    lastDraw = Date.now();
    const parts = [`${clock()} ${name}`];
    if (counts?.done !== undefined)
      parts.push(counts.total ? `${counts.done}/${counts.total}` : `${counts.done} files`);
    if (counts?.bytes !== undefined) {
      const seconds = (Date.now() - phaseStarted) / 1000;
      parts.push(
        `${formatBytes(counts.bytes)}${seconds > 0.5 ? ` at ${formatBytes(counts.bytes / seconds)}/s` : ''}`,
      );
    }
    if (counts?.done && counts.total && counts.done < counts.total) {
      const elapsed = Date.now() - phaseStarted;
      parts.push(`ETA ${Math.ceil(((elapsed / counts.done) * (counts.total - counts.done)) / 1000)}s`);
    }
    if (detail && counts === undefined) parts.push(detail);
    process.stderr.write(`\r${parts.join('  ')}\u001b[K`);
  };
  print.finish = () => {
    if (!tty || !phase) return;
    flush();
    process.stderr.write('\n');
  };
  return print;
}
