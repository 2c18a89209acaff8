import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { placeFileSync, readFileUpTo, readFileUpToSync } from '../../src/lib/files.ts';
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

describe('placeFileSync without a temp file (a restore into an empty store)', () => {
  it('creates a missing file, and writes nothing where a file, a symlink or a hard link already is', () => {
    temp = tempDir('files');
    const bytes = randomBytes(5000);
    const fresh = path.join(temp.dir, 'fresh');
    expect(placeFileSync(undefined, fresh, bytes)).toBe(true);
    expect(readFileSync(fresh).equals(bytes)).toBe(true);

    const outside = path.join(temp.dir, 'outside');
    writeFileSync(outside, 'kept');
    const link = path.join(temp.dir, 'symlink');
    symlinkSync(outside, link);
    const hard = path.join(temp.dir, 'hardlink');
    linkSync(outside, hard);
    for (const taken of [fresh, link, hard])
      expect(placeFileSync(undefined, taken, randomBytes(10))).toBe(false);
    expect(readFileSync(outside, 'utf8')).toBe('kept');
    expect(readFileSync(fresh).equals(bytes)).toBe(true);

    // Through a temp file, what is there is replaced, never written through.
    placeFileSync(path.join(temp.dir, 'x.tmp'), hard, Buffer.from('new'));
    expect(readFileSync(hard, 'utf8')).toBe('new');
    expect(readFileSync(outside, 'utf8')).toBe('kept');
  });

  it('leaves nothing behind when the write fails', () => {
    temp = tempDir('files');
    const target = path.join(temp.dir, 'missing-dir', 'file');
    expect(() => placeFileSync(undefined, target, randomBytes(10))).toThrow(/ENOENT/);
    expect(existsSync(target)).toBe(false);
  });
});
