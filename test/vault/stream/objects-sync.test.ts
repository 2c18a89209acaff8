import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { readAll } from '../../../src/blobstore/index.ts';
import { loadConfig } from '../../../src/config/config.ts';
import {
  objectStreamStatus,
  restoreStreamedObjects,
  streamedObjects,
} from '../../../src/vault/stream/objects-status.ts';
import { runObjectStream } from '../../../src/vault/stream/objects-stream.ts';
import { openRepository, resolveTargets } from '../../../src/vault/targets.ts';
import { fakePng, startTestApi, type TestApi } from '../../support/api.ts';
import { createTrendWithPrompt, postGeneration, samplePhoto } from '../../support/generation.ts';
import { tempDir } from '../../support/temp.ts';
import { waitForStreamed } from './support.ts';

describe('BACKUP_SYNC=on', () => {
  const apis: TestApi[] = [];
  const temp = tempDir('sync');
  afterAll(async () => {
    for (const api of apis) await api.close();
    temp.remove();
  });

  it('I11: an upload answered 2xx is already in the local repository (no streamer running)', async () => {
    const api = await startTestApi({ BACKUP_SYNC: 'on' });
    apis.push(api);
    await createTrendWithPrompt(api, 'ghibli', 'ghibli-portrait');
    const example = fakePng(30_000);
    const upload = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: example,
    });
    expect(upload.statusCode, upload.body).toBe(200);
    const photo = await samplePhoto(7);
    const generation = await postGeneration(api, { trend: 'ghibli', user: 'u1', variants: '1' }, photo);
    expect(generation.statusCode).toBe(202);
    const [row] = await api.db.sql`select photo_key from generations where id = ${generation.body.id}`;

    // Read at once, as a restore on a new machine would: the journal already names both objects.
    const repo = await openRepository(resolveTargets(api.config, ['local'])[0]!, api.config);
    const streamed = await streamedObjects(repo);
    const keys = [upload.json().key as string, row!.photo_key as string];
    expect(keys.filter((key) => !streamed.has(key))).toEqual([]);
    const store = new FileBlobStore(path.join(temp.dir, 'restored'));
    expect(await restoreStreamedObjects(repo, keys, store)).toMatchObject({
      written: 2,
      missing: [],
      damaged: [],
    });
    expect((await readAll(await store.get(keys[0]!))).equals(example)).toBe(true);
    expect((await readAll(await store.get(keys[1]!))).equals(photo)).toBe(true);
    expect((await objectStreamStatus(api.db.sql, api.config))[0]!.pending).toBe(0);

    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const response = await api.app.inject({
        method: 'PUT',
        url: '/api/v1/trends/ghibli/example',
        headers: { ...api.admin, 'content-type': 'image/png' },
        payload: fakePng(30_000 + i),
      });
      expect(response.statusCode).toBe(200);
      times.push(Math.round(performance.now() - started));
    }
    console.log(`BACKUP_SYNC=on: 30 kB example uploads answered in (ms) ${times.join(', ')}`);
  }, 120_000);

  it('I11: when the local target cannot be written the upload is a 503 in one sentence, and nothing is lost', async () => {
    // BACKUP_DIR under a plain file: no directory can be made there.
    const blocker = path.join(temp.dir, 'blocker');
    writeFileSync(blocker, 'not a directory');
    const api = await startTestApi({ BACKUP_SYNC: 'on', BACKUP_DIR: path.join(blocker, 'backups') });
    apis.push(api);
    await createTrendWithPrompt(api, 'ghibli', 'ghibli-portrait');
    const upload = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/ghibli/example',
      headers: { ...api.admin, 'content-type': 'image/png' },
      payload: fakePng(12_000),
    });
    expect(upload.statusCode).toBe(503);
    const error = upload.json().error as { code: string; message: string };
    expect(error.code).toBe('backup_unavailable');
    expect(error.message).toMatch(/^The upload was not acknowledged because BACKUP_SYNC is on .*\.$/);
    expect(error.message).not.toMatch(/\.\)/);
    const [queued] = await api.db.sql`select key from object_stream_queue`;
    expect(queued).toBeDefined();

    // The disk comes back: the streamer takes the queued object from the row left behind.
    rmSync(blocker);
    mkdirSync(blocker);
    const config = loadConfig({ ...api.config.source, DATABASE_URL: api.db.url } as Record<string, string>, {
      dotEnv: false,
    });
    const stop = new AbortController();
    const running = runObjectStream({
      config,
      sql: api.db.sql,
      objects: api.objects.blobs,
      signal: stop.signal,
    });
    try {
      const repo = await openRepository(resolveTargets(config, ['local'])[0]!, config, { create: true });
      await waitForStreamed(repo, [queued!.key as string], 10_000);
    } finally {
      stop.abort();
      await running;
    }
  }, 120_000);
});
