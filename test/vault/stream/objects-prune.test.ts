import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { sleep } from '../../../src/lib/process.ts';
import { tombstoneObjects } from '../../../src/objects/store.ts';
import { runForget } from '../../../src/vault/forget.ts';
import {
  objectStreamStatus,
  restoreStreamedObjects,
  streamedObjects,
} from '../../../src/vault/stream/objects-status.ts';
import { type ObjectStreamEvent, runObjectStream } from '../../../src/vault/stream/objects-stream.ts';
import { fakePng } from '../../support/api.ts';
import { runCli } from '../../support/cli.ts';
import { startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';
import { until, waitForRepository, waitForStreamed } from './support.ts';

describe('streamed objects and retention', () => {
  let vault: VaultEnv | undefined;
  let other: VaultEnv | undefined;
  afterAll(async () => {
    await vault?.close();
    await other?.close();
  });

  it('I11: an object missing from the object store is reported, holds the watermark, and holds back no other', async () => {
    other = await startVaultEnv('stream-missing');
    const config = loadConfig(other.env, { dotEnv: false });
    const lost = await other.objects.put(Readable.from([fakePng(9000)]), { kind: 'photo', maxBytes: 1e9 });
    await other.objects.blobs.delete(lost.key);
    const events: ObjectStreamEvent[] = [];
    const stop = new AbortController();
    const running = runObjectStream({
      config,
      sql: other.db.sql,
      objects: other.objects.blobs,
      signal: stop.signal,
      onProgress: (event) => events.push(event),
    });
    try {
      // Long enough for a target-wide backoff to have grown past the 5 s promise.
      await sleep(9000);
      expect(events.some((e) => e.type === 'object-failed' && e.key === lost.key)).toBe(true);
      const fresh = await other.objects.put(Readable.from([fakePng(9001)]), { kind: 'photo', maxBytes: 1e9 });
      const repo = await waitForRepository(config, 'local');
      const ms = await waitForStreamed(repo, [fresh.key], 5000);
      console.log(`with a missing object queued for 9 s, a new one was streamed after ${ms} ms`);
      // The journal names it before its progress is marked: wait for the mark.
      await until(
        'only the lost object left',
        async () => (await objectStreamStatus(other!.db.sql, config))[0]!.pending === 1,
        5000,
      );
      const [status] = await objectStreamStatus(other.db.sql, config);
      const [row] = await other.db.sql`select enqueued_at from object_stream_queue where key = ${lost.key}`;
      expect(status!.recoverableUntil!.getTime()).toBeLessThan((row!.enqueued_at as Date).getTime());
    } finally {
      stop.abort();
      await running;
    }
  }, 120_000);

  it('I3, I11: an object deleted before it was streamed (its bytes gone) does not hold the watermark', async () => {
    const deleted = await startVaultEnv('stream-deleted');
    try {
      const config = loadConfig(deleted.env, { dotEnv: false });
      // As after a restore that re-applied a user's deletion: the row tombstoned, the bytes never put back.
      const gone = await deleted.objects.put(Readable.from([fakePng(9100)]), {
        kind: 'photo',
        maxBytes: 1e9,
      });
      await tombstoneObjects(deleted.db.sql, [gone.key]);
      await deleted.objects.blobs.delete(gone.key);
      const stop = new AbortController();
      const running = runObjectStream({
        config,
        sql: deleted.db.sql,
        objects: deleted.objects.blobs,
        signal: stop.signal,
      });
      try {
        await until(
          'the deleted object settled',
          async () => (await objectStreamStatus(deleted.db.sql, config))[0]!.pending === 0,
          10_000,
        );
        const before = Date.now();
        await sleep(1500);
        const [status] = await objectStreamStatus(deleted.db.sql, config);
        expect(status!.recoverableUntil!.getTime()).toBeGreaterThan(before);
      } finally {
        stop.abort();
        await running;
      }
    } finally {
      await deleted.close();
    }
  }, 120_000);

  it('I6, I11: prune keeps the blobs a stream journal names, a snapshot reuses them, check reports one that goes missing', async () => {
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

    // A snapshot taken now names the same blobs: the object costs the repository nothing more.
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout).stats.objects).toMatchObject({ objects: 1, blobsAdded: 0 });

    const [chunk] = (await streamedObjects(repo)).get(record.key)!.chunks;
    await repo.deleteBlob(chunk!);
    const report = await repo.check();
    expect(report.ok).toBe(false);
    expect(report.missingBlobs.map((b) => b.id)).toEqual([chunk]);
  }, 120_000);
});
