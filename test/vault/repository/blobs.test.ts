import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptBlobError, MissingBlobError, Repository } from '../../../src/vault/repository/index.ts';
import {
  AUTH_KEY,
  blobFile,
  digest,
  fileSize,
  filesUnder,
  flipByte,
  PASSWORD,
  randomData,
  type TempRepo,
  tempRepo,
  textBytes,
} from './helpers.ts';

const PNG_HEADER = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_HEADER = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);

let t: TempRepo;
afterEach(() => t?.remove());

describe.each([
  ['unencrypted', false],
  ['encrypted', true],
])('blobs in an %s repository', (_label, encrypted) => {
  it('I7: a large blob (checked off the main thread) renamed to another id is never returned', async () => {
    t = await tempRepo({ encrypted });
    const [a, b] = [randomData(600_000), randomData(600_000)];
    const putA = await t.repo.putBlob('data', a);
    const putB = await t.repo.putBlob('data', b);
    expect(digest(await t.repo.getBlob(putA.id))).toBe(digest(a));
    await t.store.put(`data/${putB.id.slice(0, 2)}/${putB.id}`, await readFile(blobFile(t.root, putA.id)));
    await expect(t.repo.getBlob(putB.id)).rejects.toThrow(/content does not match its id/);
  });

  it('I7: compressible and incompressible blobs round-trip byte for byte', async () => {
    t = await tempRepo({ encrypted });
    const text = textBytes(200_000);
    const noise = randomData(100_000);
    const empty = Buffer.alloc(0);
    const putText = await t.repo.putBlob('data', text);
    const putNoise = await t.repo.putBlob('data', noise);
    const putEmpty = await t.repo.putBlob('data', empty);
    expect(putText.stored && putNoise.stored && putEmpty.stored).toBe(true);
    // zstd shrinks the text; random bytes are kept raw (only the header, and under encryption nonce and tag, added).
    expect(putText.storedSize).toBeLessThan(text.length / 10);
    expect(putNoise.storedSize).toBe(noise.length + 2 + (encrypted ? 28 : 0));
    expect(await fileSize(blobFile(t.root, putText.id))).toBe(putText.storedSize);
    expect(digest(await t.repo.getBlob(putText.id))).toBe(digest(text));
    expect(digest(await t.repo.getBlob(putNoise.id))).toBe(digest(noise));
    expect(await t.repo.getBlob(putEmpty.id)).toEqual(empty);
    const reopened = await Repository.open(
      t.store,
      encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY },
    );
    expect(digest(await reopened.getBlob(putText.id))).toBe(digest(text));
  });

  it('I2: the same plaintext twice is stored once, also when put concurrently', async () => {
    t = await tempRepo({ encrypted });
    const data = textBytes(50_000);
    const first = await t.repo.putBlob('data', data);
    const second = await t.repo.putBlob('data', data);
    expect(second).toEqual({ id: first.id, stored: false, storedSize: first.storedSize });
    const other = randomData(30_000);
    const racing = await Promise.all(Array.from({ length: 8 }, () => t.repo.putBlob('data', other)));
    expect(racing.filter((put) => put.stored)).toHaveLength(1);
    expect(new Set(racing.map((put) => put.id)).size).toBe(1);
    expect((await filesUnder(t.root)).filter((f) => f.startsWith('data/'))).toHaveLength(2);
    // A fresh process learns what is there from one listing and uploads nothing again.
    const reopened = await Repository.open(
      t.store,
      encrypted ? { password: PASSWORD } : { authKey: AUTH_KEY },
    );
    expect((await reopened.putBlob('data', data)).stored).toBe(false);
    expect(await reopened.hasBlob(first.id)).toBe(true);
  });

  it('I7: a flipped byte in any of several blobs is CorruptBlobError naming that blob', async () => {
    t = await tempRepo({ encrypted });
    const puts = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        t.repo.putBlob('data', i % 2 ? randomData(5000) : textBytes(9000 + i)),
      ),
    );
    const broken = puts.slice(0, 4);
    for (const put of broken) await flipByte(blobFile(t.root, put.id));
    for (const put of broken) {
      const error = await t.repo.getBlob(put.id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptBlobError);
      expect((error as CorruptBlobError).id).toBe(put.id);
      expect((error as Error).message).toContain(put.id);
    }
    for (const put of puts.slice(4)) expect((await t.repo.getBlob(put.id)).length).toBeGreaterThan(0);
  });
});

describe('blob encoding', () => {
  it('I7: a blob renamed to another id, or truncated, is never returned', async () => {
    t = await tempRepo();
    const a = await t.repo.putBlob('data', Buffer.from('the content of a'));
    const b = await t.repo.putBlob('data', Buffer.from('the content of b'));
    await t.store.put(`data/${b.id.slice(0, 2)}/${b.id}`, await readFile(blobFile(t.root, a.id)));
    await expect(t.repo.getBlob(b.id)).rejects.toThrow(/content does not match its id/);
    await t.store.put(`data/${a.id.slice(0, 2)}/${a.id}`, Buffer.from([0]));
    await expect(t.repo.getBlob(a.id)).rejects.toBeInstanceOf(CorruptBlobError);
    const absent = createHash('sha256').update('never stored').digest('hex');
    await expect(t.repo.getBlob(absent)).rejects.toBeInstanceOf(MissingBlobError);
  });

  it('unencrypted blob ids are the SHA-256 of the plaintext', async () => {
    t = await tempRepo();
    const data = Buffer.from('hello vault');
    expect((await t.repo.putBlob('data', data)).id).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('already-compressed formats are stored raw, and so is data zstd cannot shrink by 3%', async () => {
    t = await tempRepo();
    // A PNG signature in front of very compressible bytes: the sniffing decides, not zstd.
    const png = Buffer.concat([PNG_HEADER, textBytes(20_000)]);
    expect((await t.repo.putBlob('data', png)).storedSize).toBe(png.length + 2);
    const hinted = textBytes(20_001);
    expect((await t.repo.putBlob('data', hinted, { compress: false })).storedSize).toBe(hinted.length + 2);
    const raw = await readFile(blobFile(t.root, t.repo.blobId(png)));
    expect(raw.subarray(0, 2)).toEqual(Buffer.from([0, 0]));
    expect(raw.subarray(2, 10)).toEqual(PNG_HEADER);
  });

  it('encryption: no stored file holds a plaintext marker or an image header, and names are not SHA-256', async () => {
    t = await tempRepo({ encrypted: true });
    const marker = 'PROMPT-MARKER-ghibli-portrait-7f3a';
    const prompt = Buffer.from(`template: "Turn {subject} into ${marker}"\n`.repeat(50));
    const png = Buffer.concat([PNG_HEADER, randomData(4000)]);
    const jpeg = Buffer.concat([JPEG_HEADER, randomData(4000)]);
    const ids = [];
    for (const data of [prompt, png, jpeg]) ids.push((await t.repo.putBlob('data', data)).id);
    const tree = await t.repo.writeTree([
      { name: `${marker}.yaml`, type: 'file', mode: 0o644, mtimeMs: 1, size: 1, chunks: [ids[0]!] },
    ]);
    await t.repo.saveSnapshot({
      time: new Date().toISOString(),
      host: marker,
      tags: [marker],
      trees: { prompts: tree },
    });
    const lock = await t.repo.lock({ exclusive: false, refreshEveryMs: 0 });
    const sha = [prompt, png, jpeg].map((d) => createHash('sha256').update(d).digest('hex'));
    for (const file of await filesUnder(t.root)) {
      const bytes = await readFile(`${t.root}/${file}`);
      expect(bytes.includes(marker), file).toBe(false);
      expect(bytes.includes(PNG_HEADER), file).toBe(false);
      expect(bytes.includes(JPEG_HEADER.subarray(0, 3)), file).toBe(false);
      for (const hash of sha) expect(file.includes(hash), file).toBe(false);
    }
    expect(digest(await t.repo.getBlob(ids[1]!))).toBe(digest(png));
    await lock.release();
  });
});
