import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readFileUpTo, readFileUpToSync } from '../../src/lib/files.ts';
import { tempDir } from '../support/temp.ts';

let temp: ReturnType<typeof tempDir> | undefined;
afterEach(() => temp?.remove());

describe.each([
  ['readFileUpTo', async (file: string, max: number) => readFileUpTo(file, max)],
  ['readFileUpToSync', async (file: string, max: number) => readFileUpToSync(file, max)],
])('%s', (_name, read) => {
  it('returns a file of at most maxBytes whole, an empty one empty, and nothing of a larger one', async () => {
    temp = tempDir('files');
    const bytes = randomBytes(70_000);
    const file = path.join(temp.dir, 'f.bin');
    writeFileSync(file, bytes);
    expect((await read(file, 70_000))?.equals(bytes)).toBe(true);
    expect(await read(file, 69_999)).toBeUndefined();
    writeFileSync(file, '');
    expect((await read(file, 10))?.length).toBe(0);
    await expect(read(path.join(temp.dir, 'missing'), 10)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('readFileUpToSync', () => {
  it('refuses a FIFO at once instead of waiting for a writer', () => {
    temp = tempDir('files');
    const fifo = path.join(temp.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readFileUpToSync(fifo, 1000)).toThrow(/not a regular file/);
  });
});
