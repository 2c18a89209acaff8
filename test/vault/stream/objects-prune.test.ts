import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { runForget } from '../../../src/vault/forget.ts';
import { restoreStreamedObjects, streamedObjects } from '../../../src/vault/stream/objects-status.ts';
import { runObjectStream } from '../../../src/vault/stream/objects-stream.ts';
import { fakePng } from '../../support/api.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';
import { waitForRepository, waitForStreamed } from './support.ts';

describe('streamed objects and retention', () => {
  let vault: VaultEnv | undefined;
  afterAll(async () => vault?.close());

  it('I6, I11: prune keeps the blobs a stream journal names; check reports one that goes missing', async () => {
    vault = await startVaultEnv('stream-prune');
    const config = loadConfig(vault.env, { dotEnv: false });
    const record = await vault.objects.put(Readable.from([fakePng(40_000)]), {
      kind: 'photo',
      maxBytes: 1e9,
    });
    const stop = new AbortController();
    const running = runObjectStream({
      config,
      sql: vault.db.sql,
      objects: vault.objects.blobs,
      signal: stop.signal,
    });
    const repo = await waitForRepository(config, 'local');
    try {
      await waitForStreamed(repo, [record.key], 10_000);
    } finally {
      stop.abort();
      await running;
    }
    // No snapshot refers to the object: only the journal does.
    const pruned = await runForget(repo, { last: 1 }, { prune: true });
    expect(pruned.pruned?.blobs).toBe(0);
    const store = new FileBlobStore(path.join(vault.dir, 'restored'));
    const restored = await restoreStreamedObjects(repo, [record.key], store);
    expect(restored).toMatchObject({ written: 1, missing: [], damaged: [] });

    const [chunk] = (await streamedObjects(repo)).get(record.key)!.chunks;
    await repo.deleteBlob(chunk!);
    const report = await repo.check();
    expect(report.ok).toBe(false);
    expect(report.missingBlobs.map((b) => b.id)).toEqual([chunk]);
  }, 120_000);
});
