import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BaseTarError, extractBaseTar } from '../../../src/vault/wal/base-tar.ts';
import { tarMember } from '../../support/tar-member.ts';
import { tempDir } from '../../support/temp.ts';
import { Tmpfs, tmpfsUnavailable } from '../../support/tmpfs.ts';

const END = Buffer.alloc(1024);

async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const temps: Array<{ remove(): void }> = [];
function emptyDir(): string {
  const temp = tempDir('base-tar');
  temps.push(temp);
  const dir = path.join(temp.dir, 'data');
  mkdirSync(dir);
  return dir;
}
afterEach(() => {
  for (const temp of temps.splice(0)) temp.remove();
});

// I2 for a physical restore: the data directory holds exactly the base backup's bytes, and nothing the archive
// names can land outside it.
describe("a base backup's tar extracted into a new data directory", () => {
  const big = randomBytes(3 * 1024 * 1024 + 17);
  const small = randomBytes(8192);
  const archive = Buffer.concat([
    tarMember({ path: 'base/', type: 'Directory', mode: 0o700 }),
    tarMember({ path: 'base/1/', type: 'Directory', mode: 0o700 }),
    tarMember({ path: 'base/1/16384', type: 'File', mode: 0o600 }, big),
    tarMember({ path: 'base/1/16384_fsm', type: 'File', mode: 0o600 }, small),
    tarMember({ path: 'global/pg_control', type: 'File', mode: 0o600 }, small.subarray(0, 512)),
    tarMember({ path: 'postmaster.opts', type: 'File', mode: 0o600 }),
    tarMember({ path: 'pg_tblspc/', type: 'Directory', mode: 0o700 }),
    tarMember({ path: 'pg_tblspc/16500', type: 'SymbolicLink', linkpath: '/srv/tablespace' }),
    END,
  ]);

  for (const size of [1, 511, 513, 7777, 65536, archive.length]) {
    it(`gives every file its bytes and mode, fed in ${size}-byte pieces`, async () => {
      const dir = emptyDir();
      await extractBaseTar(pieces(archive, size), dir);
      expect(readFileSync(path.join(dir, 'base/1/16384')).equals(big)).toBe(true);
      expect(readFileSync(path.join(dir, 'base/1/16384_fsm')).equals(small)).toBe(true);
      expect(readFileSync(path.join(dir, 'global/pg_control')).equals(small.subarray(0, 512))).toBe(true);
      expect(statSync(path.join(dir, 'postmaster.opts')).size).toBe(0);
      expect(statSync(path.join(dir, 'base/1/16384')).mode & 0o777).toBe(0o600);
      expect(statSync(path.join(dir, 'base/1')).mode & 0o777).toBe(0o700);
      expect(readlinkSync(path.join(dir, 'pg_tblspc/16500'))).toBe('/srv/tablespace');
    });
  }

  it('keeps memory bounded: a file larger than the bytes allowed in flight is written whole', async () => {
    const large = randomBytes(80 * 1024 * 1024);
    const dir = emptyDir();
    await extractBaseTar(
      pieces(Buffer.concat([tarMember({ path: 'base/1/1', type: 'File' }, large), END]), 1024 * 1024),
      dir,
    );
    expect(readFileSync(path.join(dir, 'base/1/1')).equals(large)).toBe(true);
  });

  /** What is refused, and the sentence (or the file system's error) that says why. */
  const refused: Array<[string, Buffer[], RegExp]> = [
    [
      'an absolute member',
      [tarMember({ path: '/tmp/escaped', type: 'File' }, small)],
      /"\/tmp\/escaped" has an absolute path: refused/,
    ],
    [
      'a member that climbs out with ..',
      [tarMember({ path: '../escaped', type: 'File' }, small)],
      /"\.\.\/escaped" has a "\.\." path component/,
    ],
    [
      'a member deeper that climbs out',
      [tarMember({ path: 'base/../../escaped', type: 'File' }, small)],
      /has a "\.\." path component/,
    ],
    [
      'a member written through a link the archive made',
      [
        tarMember({ path: 'pg_tblspc/1', type: 'SymbolicLink', linkpath: '..' }),
        tarMember({ path: 'pg_tblspc/1/escaped', type: 'File' }, small),
      ],
      /writes "pg_tblspc\/1\/escaped" through a symbolic link: refused/,
    ],
    [
      'a second member of the same name after a link',
      [
        tarMember({ path: 'escaped', type: 'SymbolicLink', linkpath: '../outside' }),
        tarMember({ path: 'escaped', type: 'File' }, small),
      ],
      /EEXIST/,
    ],
    [
      'a hard link',
      [tarMember({ path: 'base/x', type: 'Link', linkpath: 'postmaster.opts' })],
      /holds base\/x of type Link, which a data directory never has/,
    ],
  ];
  for (const [what, members, why] of refused) {
    it(`refuses ${what} and writes nothing outside`, async () => {
      const dir = emptyDir();
      await expect(extractBaseTar(pieces(Buffer.concat([...members, END]), 4096), dir)).rejects.toThrow(why);
      expect(existsSync(path.join(dir, '..', 'escaped'))).toBe(false);
      expect(existsSync(path.join(dir, '..', 'outside'))).toBe(false);
    });
  }

  it('names a truncated archive as damaged', async () => {
    const dir = emptyDir();
    const cut = archive.subarray(0, 2048 + 1024 * 1024);
    const failure = await extractBaseTar(pieces(cut, 65536), dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BaseTarError);
    expect((failure as Error).message).toMatch(/archive is damaged .*Truncated input.*another base backup/);
  });

  it('a member that cannot be made stops the extraction with the reason', async () => {
    const dir = emptyDir();
    const members = [
      tarMember({ path: 'PG_VERSION', type: 'File' }, Buffer.from('15\n')),
      tarMember({ path: 'PG_VERSION/inside', type: 'File' }, small),
      tarMember({ path: 'base/1/16384', type: 'File' }, big),
    ];
    await expect(extractBaseTar(pieces(Buffer.concat([...members, END]), 4096), dir)).rejects.toThrow(
      /ENOTDIR|EEXIST/,
    );
  });
});

describe('a base backup extracted onto a full disk', () => {
  const cannotMount = tmpfsUnavailable('base-tar disk full');
  it.skipIf(cannotMount !== undefined)('fails with the disk’s error, without hanging', async () => {
    const temp = tempDir('base-tar-full');
    const disk = new Tmpfs(path.join(temp.dir, 'disk'));
    try {
      disk.mount(1024 * 1024);
      const files = Array.from({ length: 4 }, (_, i) =>
        tarMember({ path: `base/1/${i}`, type: 'File' }, randomBytes(512 * 1024)),
      );
      await expect(extractBaseTar(pieces(Buffer.concat([...files, END]), 65536), disk.dir)).rejects.toThrow(
        /ENOSPC/,
      );
    } finally {
      disk.unmount();
      temp.remove();
    }
  });
});
