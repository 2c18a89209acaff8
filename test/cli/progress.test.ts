import { afterEach, describe, expect, it } from 'vitest';
import { progressPrinter } from '../../src/cli/progress.ts';

describe('the progress line on a terminal', () => {
  const original = { isTTY: process.stderr.isTTY, write: process.stderr.write };
  afterEach(() => {
    process.stderr.isTTY = original.isTTY;
    process.stderr.write = original.write;
  });

  /** Everything written to stderr while `fn` runs, as if stderr were a terminal. */
  function onTerminal(fn: () => void): string {
    let out = '';
    process.stderr.isTTY = true;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      fn();
    } finally {
      process.stderr.isTTY = original.isTTY;
      process.stderr.write = original.write;
    }
    return out;
  }

  const lastLine = (out: string, phase: string) =>
    out
      .split(/[\r\n]/)
      .filter((line) => line.includes(phase))
      .at(-1) ?? '';

  it('ends a phase on its final figures, not on the last throttled redraw', () => {
    const out = onTerminal(() => {
      const progress = progressPrinter();
      progress('objects', undefined, { done: 1, total: 200 });
      progress('objects', undefined, { done: 194, total: 200 });
      progress('objects', undefined, { done: 200, total: 200 });
      progress.finish();
    });
    expect(lastLine(out, 'objects')).toMatch(/200\/200/);
    expect(lastLine(out, 'objects')).not.toMatch(/ETA/);
    expect(out.endsWith('\n')).toBe(true);
  });

  it('also when the next phase starts right after', () => {
    const out = onTerminal(() => {
      const progress = progressPrinter();
      progress('prompts', undefined, { done: 1, total: 10 });
      progress('prompts', undefined, { done: 10, total: 10 });
      progress('objects', undefined, { done: 0, total: 5 });
      progress.finish();
    });
    expect(lastLine(out, 'prompts')).toMatch(/10\/10/);
  });
});
