import fc from 'fast-check';
import { expect } from 'vitest';

/**
 * Shared pieces of the hostile-input suite. Every property runs with a fixed seed, printed in its test
 * name, so a failure replays exactly; HOSTILE_RUNS sets the runs per property (default 100) and
 * HOSTILE_SEED replaces every seed for an exploratory run.
 */
export const RUNS = Math.max(1, Number(process.env.HOSTILE_RUNS ?? 100) || 100);

export function seedOf(fixed: number): number {
  const override = process.env.HOSTILE_SEED;
  return override !== undefined && override !== '' ? Number(override) : fixed;
}

/** fc.assert with the suite's seed and run count; `scale` lowers the runs of expensive properties. */
export async function holds<T>(
  seed: number,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  scale = 1,
): Promise<void> {
  await fc.assert(fc.asyncProperty(arbitrary, predicate), {
    seed: seedOf(seed),
    numRuns: Math.max(1, Math.round(RUNS * scale)),
    endOnFailure: true,
  });
}

/** One plain sentence: a single line, no stack frame, no `undefined`, no `[object Object]`. */
export function expectPlainSentence(message: string): void {
  expect(message.trim().length, message).toBeGreaterThan(0);
  expect(message.trim().split('\n'), message).toHaveLength(1);
  expect(message, message).not.toMatch(/\n\s+at |undefined|\[object Object\]|NaN/);
}

/** The API's error shape: {"error": {"code", "message"}} with a plain message. */
export function expectErrorShape(body: string): { code: string; message: string } {
  const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
  expect(typeof parsed.error?.code, body).toBe('string');
  expect(typeof parsed.error?.message, body).toBe('string');
  expectPlainSentence(parsed.error!.message as string);
  return parsed.error as { code: string; message: string };
}

/** Path pieces that try to climb out of a folder, in the spellings filesystems and URLs accept. */
export const TRAVERSAL_PIECES = [
  '..',
  '.',
  '...',
  '',
  '/',
  '\\',
  '..\\',
  '../',
  '/etc/passwd',
  'C:\\Windows',
  'C:',
  '\u0000',
  '%2e%2e',
  '%2f',
  '%00',
  '.hidden',
  '~',
  'a',
  'example',
  'ab',
  'x.png',
  '\u2025',
  '\uFF0E\uFF0E',
  'CON',
  ' ',
];

/** Strings built from traversal pieces and random text. */
export const hostilePath = fc
  .array(fc.oneof(fc.constantFrom(...TRAVERSAL_PIECES), fc.string({ maxLength: 8 })), {
    minLength: 1,
    maxLength: 8,
  })
  .chain((parts) =>
    fc.constantFrom('/', '\\', '').map((separator) => parts.join(separator === '' ? '/' : separator)),
  );
