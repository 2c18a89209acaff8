import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BlobStore, S3BlobStore } from '../../../src/blobstore/index.ts';
import { Repository, WrongPasswordError } from '../../../src/vault/repository/index.ts';
import { type S3Server, startS3Server } from '../../support/s3-server.ts';
import { tempDir } from '../../support/temp.ts';
import { AUTH_KEY, FAST_KDF, PASSWORD, randomData, SMALL_CHUNKS, textBytes } from './helpers.ts';
import { lockSuite } from './lock-suite.ts';

const BUCKET = 'vault-repository';
let server: S3Server;
let run = 0;
const stores: BlobStore[] = [];

beforeAll(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
});
afterAll(async () => {
  for (const store of stores) await store.close?.();
  await server?.stop();
});

/** A fresh prefix per case: an empty target without restarting the server. */
function freshStore(): BlobStore {
  const store = new S3BlobStore({ bucket: BUCKET, prefix: `case-${++run}`, settings: server.settings });
  stores.push(store);
  return store;
}

describe('repository on S3 (s3rver)', () => {
  it('I6/I7: an encrypted round trip: directory in, snapshot, reopen from a second client, restore, check --read-data', async () => {
    const store = freshStore();
    const repo = await Repository.init(store, { password: PASSWORD, kdf: FAST_KDF, chunker: SMALL_CHUNKS });
    const temp = tempDir('vault-s3');
    try {
      const source = path.join(temp.dir, 'source');
      await mkdir(path.join(source, 'prompts'), { recursive: true });
      await writeFile(path.join(source, 'prompts/a.yaml'), 'name: a\n');
      await writeFile(
        path.join(source, 'dump.sql'),
        Buffer.concat([textBytes(200_000), randomData(400_000)]),
      );
      const { treeId, stats } = await repo.storeDirectory(source, { concurrency: 4 });
      expect(stats.filesNew).toBe(2);
      const snapshot = await repo.saveSnapshot({
        time: new Date().toISOString(),
        host: 'h',
        tags: ['s3'],
        trees: { files: treeId },
      });

      const second = new S3BlobStore({ bucket: BUCKET, prefix: `case-${run}`, settings: server.settings });
      stores.push(second);
      await expect(Repository.open(second, { password: 'wrong' })).rejects.toBeInstanceOf(WrongPasswordError);
      const reopened = await Repository.open(second, { password: PASSWORD });
      expect(await reopened.listSnapshots()).toEqual([snapshot]);
      // The index comes from one listing: everything already stored is known without a HEAD each.
      const again = await reopened.storeDirectory(source);
      expect(again.treeId).toBe(treeId);
      expect(again.stats.blobsAdded).toBe(0);

      const target = path.join(temp.dir, 'restored');
      await reopened.restoreTree((await reopened.loadSnapshot(snapshot)).trees['files']!, target);
      for (const file of ['prompts/a.yaml', 'dump.sql']) {
        expect(
          (await readFile(path.join(target, file))).equals(await readFile(path.join(source, file))),
        ).toBe(true);
      }
      const report = await reopened.check({ readData: true });
      expect(report).toMatchObject({
        ok: true,
        snapshots: 1,
        damagedBlobs: [],
        missingBlobs: [],
        unreferencedBlobs: [],
      });
    } finally {
      temp.remove();
    }
  });
});

// s3rver ignores If-None-Match: these pass because the protocol never relies on it.
lockSuite('s3rver', () => Repository.init(freshStore(), { kdf: FAST_KDF, authKey: AUTH_KEY }));
