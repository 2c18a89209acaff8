import { existsSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { HeaderData } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertValidKey, InvalidKeyError } from '../../src/blobstore/blobstore.ts';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import {
  DamagedArchiveError,
  extractTarGzSafely,
  UnsafeArchiveError,
} from '../../src/vault/classic/safe-extract.ts';
import { tarMember } from '../support/tar-member.ts';
import { tempDir } from '../support/temp.ts';
import { expectPlainSentence, holds, hostilePath, seedOf } from './hostile-support.ts';

/**
 * Hostile keys and archives against the storage layers: nothing may resolve, be written or be read
 * outside the store's root or the extraction target, whatever the key or the archive member says.
 */
let temp: ReturnType<typeof tempDir>;
beforeAll(() => {
  temp = tempDir('hostile-storage');
});
afterAll(() => temp?.remove());

/** Every path below dir (links listed, not followed). */
function everything(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() && !entry.isSymbolicLink() ? [full, ...everything(full)] : [full];
  });
}

const blobKey = fc.oneof(
  hostilePath,
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc
    .array(fc.constantFrom('a', 'b0', '..', '.', '', '.tmp', 'x.png', '-', '_'), {
      minLength: 1,
      maxLength: 6,
    })
    .map((parts) => parts.join('/')),
  fc.nat(3000).map((n) => 'k'.repeat(n)),
);

describe('blob store keys', () => {
  it(`assertValidKey lets through only keys that resolve strictly inside the root (seed ${seedOf(4001)})`, async () => {
    const root = path.join(temp.dir, 'resolve-root');
    await holds(4001, blobKey, async (key) => {
      let valid = true;
      try {
        assertValidKey(key);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidKeyError);
        expectPlainSentence((error as Error).message);
        valid = false;
      }
      if (!valid) return;
      const resolved = path.resolve(root, ...key.split('/'));
      expect(resolved.startsWith(root + path.sep), key).toBe(true);
      expect(path.relative(root, resolved).split(path.sep), key).toEqual(key.split('/'));
      expect(
        key.split('/').some((s) => s.startsWith('.')),
        key,
      ).toBe(false);
    });
  });

  it(`FileBlobStore put/get/head/delete never touch anything outside its root (seed ${seedOf(4002)})`, async () => {
    const parent = path.join(temp.dir, 'file-store');
    const root = path.join(parent, 'root');
    await mkdir(parent, { recursive: true });
    writeFileSync(path.join(parent, 'sentinel'), 'outside');
    const store = new FileBlobStore(root);
    await holds(4002, blobKey, async (key) => {
      const body = Buffer.from(`blob ${key.length}`);
      let stored = false;
      try {
        await store.put(key, body, { size: body.length });
        stored = true;
      } catch (error) {
        // A valid key may still clash with a folder of another key: a BlobStoreError sentence, not an escape.
        expect((error as Error).name, String(error)).toMatch(/^(InvalidKeyError|BlobStoreError)$/);
        expectPlainSentence((error as Error).message);
      }
      for (const op of [() => store.head(key), () => store.get(key).then((s) => s.destroy())]) {
        await op().catch((error: Error) => {
          expect(error.name, String(error)).toMatch(/^(InvalidKeyError|BlobNotFoundError|BlobStoreError)$/);
        });
      }
      if (stored) {
        expect(existsSync(path.join(root, ...key.split('/'))), key).toBe(true);
        await store.delete(key);
      }
      expect(readdirSync(parent).sort()).toEqual(
        ['root', 'sentinel'].filter((n) => n !== 'root' || existsSync(root)),
      );
    });
    for (const file of everything(root)) expect(file.startsWith(root + path.sep)).toBe(true);
  });
});

const memberPath = fc.oneof(
  {
    weight: 3,
    arbitrary: hostilePath
      .map((p) => p.replaceAll('\u0000', ''))
      .filter((p) => p.length > 0 && p.length < 99),
  },
  { weight: 2, arbitrary: fc.constantFrom('ok.txt', 'dir/', 'dir/inner.txt', 'prompts/a.yaml') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('../evil', '/tmp/evil', 'a/../../evil', '..\\evil', 'C:\\evil', './../evil'),
  },
);
const linkTarget = fc.constantFrom('/etc/passwd', '..', '../..', '/tmp', 'dir', '../outside', 'ok.txt', '/');
const arbitraryMember = fc.oneof(
  fc
    .record({ path: memberPath, body: fc.uint8Array({ maxLength: 600 }) })
    .map(({ path: p, body }) =>
      tarMember(
        { path: p, type: p.endsWith('/') ? 'Directory' : 'File' },
        p.endsWith('/') ? undefined : Buffer.from(body),
      ),
    ),
  fc
    .record({ path: memberPath, linkpath: linkTarget, type: fc.constantFrom('SymbolicLink', 'Link') })
    .map((h) => tarMember(h as HeaderData)),
  fc
    .record({ path: memberPath, type: fc.constantFrom('CharacterDevice', 'FIFO', 'BlockDevice') })
    .map((h) => tarMember(h as HeaderData)),
);

describe('classic archive extraction', () => {
  it(`hostile members are refused by name and nothing lands outside the target (seed ${seedOf(5001)})`, async () => {
    let run = 0;
    await holds(5001, fc.array(arbitraryMember, { minLength: 1, maxLength: 6 }), async (members) => {
      const dir = path.join(temp.dir, `extract-${run++}`);
      const parent = path.join(dir, 'parent');
      const target = path.join(parent, 'target');
      await mkdir(parent, { recursive: true });
      const archive = path.join(dir, 'archive.tar.gz');
      await writeFile(archive, gzipSync(Buffer.concat([...members, Buffer.alloc(1024)])));
      try {
        await extractTarGzSafely(archive, target, { maxBytes: 10 * 1024 * 1024 });
      } catch (error) {
        const known = error instanceof UnsafeArchiveError || error instanceof DamagedArchiveError;
        expect(known, String((error as Error).stack)).toBe(true);
        expectPlainSentence((error as Error).message);
      }
      // Only the target was created next to the archive, and the target holds no link of any kind.
      expect(await readdir(parent)).toEqual(existsSync(target) ? ['target'] : []);
      for (const file of everything(target)) {
        expect(file.startsWith(target + path.sep), file).toBe(true);
        const info = lstatSync(file);
        expect(info.isSymbolicLink(), file).toBe(false);
        if (info.isFile()) expect(info.nlink, file).toBe(1);
      }
      expect(existsSync('/tmp/evil')).toBe(false);
      expect(existsSync(path.join(dir, 'evil'))).toBe(false);
      expect(existsSync(path.join(dir, 'outside'))).toBe(false);
    });
  });
});
