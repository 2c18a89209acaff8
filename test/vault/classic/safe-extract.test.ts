import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DamagedArchiveError,
  extractTarGzSafely,
  UnsafeArchiveError,
} from '../../../src/vault/classic/safe-extract.ts';
import { tarMember } from '../../support/tar-member.ts';
import { tempDir } from '../../support/temp.ts';

const file = (name: string, content: string | Buffer = 'x') =>
  tarMember({ path: name, type: 'File' }, Buffer.from(content));

/** Members, then the two zero blocks that end a tar, gzip'd. */
const tarGz = (...members: Buffer[]) => gzipSync(Buffer.concat([...members, Buffer.alloc(1024)]));

/** Everything under dir (links not followed), as relative paths. */
async function listing(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    out.push(rel);
    if (entry.isDirectory()) out.push(...(await listing(dir, rel)));
  }
  return out.sort();
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let temp: ReturnType<typeof tempDir>;
/** The folder that holds the target and nothing else: whatever escapes the target lands here. */
let parent: string;
let target: string;
let archives: string;

beforeEach(async () => {
  temp = tempDir('safe-extract');
  parent = path.join(temp.dir, 'parent');
  target = path.join(parent, 'target');
  archives = path.join(temp.dir, 'archives');
  await mkdir(parent);
  await mkdir(archives);
});
afterEach(() => temp.remove());

async function write(name: string, bytes: Buffer): Promise<string> {
  const at = path.join(archives, name);
  await writeFile(at, bytes);
  return at;
}

describe('extractTarGzSafely', () => {
  it('extracts files and directories, without setuid/setgid, and refuses a target that is not empty', async () => {
    const archive = await write(
      'good.tar.gz',
      tarGz(
        tarMember({ path: 'prompts/', type: 'Directory', mode: 0o755 }),
        file('prompts/ghibli.yaml', 'name: ghibli\n'),
        tarMember(
          { path: 'data/trend_examples/tool', type: 'File', mode: 0o6755 },
          Buffer.from('#!/bin/sh\n'),
        ),
        file('data/generated_images/a.png', Buffer.alloc(70_000, 7)),
      ),
    );
    const result = await extractTarGzSafely(archive, target);
    expect(result).toEqual({ files: 3, dirs: 1, bytes: 13 + 10 + 70_000 });
    expect(await readFile(path.join(target, 'prompts/ghibli.yaml'), 'utf8')).toBe('name: ghibli\n');
    expect((await stat(path.join(target, 'data/trend_examples/tool'))).mode & 0o7777).toBe(0o755);
    await expect(extractTarGzSafely(archive, target)).rejects.toThrow(/the folder is not empty/);
  });

  const hostile: { name: string; members: () => Buffer[]; member: string; says: RegExp; outside?: string }[] =
    [
      {
        name: 'a parent path',
        members: () => [file('ok.txt'), file('../evil')],
        member: '../evil',
        says: /"\.\."/,
      },
      {
        name: 'an absolute path',
        members: () => [file('/etc/evil')],
        member: '/etc/evil',
        says: /absolute path/,
        outside: '/etc/evil',
      },
      {
        name: 'a path that climbs out midway',
        members: () => [tarMember({ path: 'a/', type: 'Directory' }), file('a/../../evil')],
        member: 'a/../../evil',
        says: /"\.\."/,
      },
      {
        name: 'a symlink to /tmp followed by a member written through it',
        members: () => [
          tarMember({ path: 'link', type: 'SymbolicLink', linkpath: '/tmp' }),
          file('link/evil'),
        ],
        member: 'link',
        says: /symbolic link \(to "\/tmp"\)/,
        outside: '/tmp/evil',
      },
      {
        name: 'a symlink that stays inside (no links at all is the rule)',
        members: () => [
          tarMember({ path: 'sub/', type: 'Directory' }),
          tarMember({ path: 'l', type: 'SymbolicLink', linkpath: 'sub' }),
        ],
        member: 'l',
        says: /symbolic link/,
      },
      {
        name: 'a hard link to /etc/passwd followed by a member overwriting it',
        members: () => [
          tarMember({ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }),
          file('passwd', 'root::0:0::/:/bin/sh\n'),
        ],
        member: 'passwd',
        says: /hard link \(to "\/etc\/passwd"\)/,
      },
      {
        name: 'a character device',
        members: () => [tarMember({ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 })],
        member: 'null',
        says: /character device/,
      },
      {
        name: 'a FIFO',
        members: () => [tarMember({ path: 'fifo', type: 'FIFO' })],
        member: 'fifo',
        says: /a FIFO/,
      },
      {
        name: 'a member past maxBytes (gzip bomb)',
        members: () => [file('small.txt'), file('bomb.bin', Buffer.alloc(4 * 1024 * 1024))],
        member: 'bomb.bin',
        says: /past the limit of 1048576 bytes/,
      },
    ];

  for (const { name, members, member: named, says, outside } of hostile) {
    it(`refuses ${name}, naming the member, and writes nothing outside the target`, async () => {
      const archive = await write('hostile.tar.gz', tarGz(...members()));
      const passwd = readFileSync('/etc/passwd');
      const existedBefore = outside !== undefined && existsSync(outside);
      const before = await listing(parent);
      const error = await extractTarGzSafely(archive, target, { maxBytes: 1024 * 1024 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UnsafeArchiveError);
      expect((error as UnsafeArchiveError).member).toBe(named);
      expect((error as Error).message).toContain(`member ${JSON.stringify(named)}`);
      expect((error as Error).message).toMatch(says);
      // One sentence: no stack of causes, no second line.
      expect((error as Error).message).not.toContain('\n');
      expect((await listing(parent)).filter((p) => !p.startsWith(`target${path.sep}`))).toEqual(
        [...before, 'target'].sort(),
      );
      if (outside !== undefined && !existedBefore) expect(existsSync(outside)).toBe(false);
      expect(sha(readFileSync('/etc/passwd'))).toBe(sha(passwd));
    });
  }

  it('stops a stream that expands past maxBytes after its last member', async () => {
    // Members within the limit, then megabytes of zeros: the kind of padding a bomb hides behind.
    const archive = await write(
      'trailer.tar.gz',
      gzipSync(Buffer.concat([file('x'), Buffer.alloc(4 * 1024 * 1024)])),
    );
    await expect(extractTarGzSafely(archive, target, { maxBytes: 1024 * 1024 })).rejects.toThrow(
      /member "x" takes the archive past the limit/,
    );
  });

  it('refuses more members than maxEntries, naming the first one past it', async () => {
    const archive = await write('many.tar.gz', tarGz(file('1'), file('2'), file('3'), file('4')));
    await expect(extractTarGzSafely(archive, target, { maxEntries: 3 })).rejects.toThrow(
      /member "4" is past the limit of 3 members/,
    );
  });

  it('refuses a link in an archive made by the real tar binary', async () => {
    const source = path.join(temp.dir, 'source');
    await mkdir(path.join(source, 'prompts'), { recursive: true });
    await writeFile(path.join(source, 'prompts/a.yaml'), 'a: 1\n');
    await symlink('/etc', path.join(source, 'prompts/etc'));
    const archive = path.join(archives, 'linked.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', source, 'prompts']);
    await expect(extractTarGzSafely(archive, target)).rejects.toThrow(
      'its member "prompts/etc" is a symbolic link (to "/etc")',
    );
  });

  it('reports a damaged archive as damaged, not as something else', async () => {
    const truncated = await write('cut.tar.gz', gzipSync(file('x', Buffer.alloc(5000)).subarray(0, 2000)));
    await expect(extractTarGzSafely(truncated, target)).rejects.toBeInstanceOf(DamagedArchiveError);
    const notGzip = await write('plain.tar.gz', Buffer.from('not a gzip stream at all'));
    await expect(extractTarGzSafely(notGzip, path.join(parent, 'other'))).rejects.toThrow(
      /plain\.tar\.gz cannot be read/,
    );
  });
});
