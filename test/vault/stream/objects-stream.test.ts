import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { readAll } from '../../../src/blobstore/index.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { sleep } from '../../../src/lib/process.ts';
import type { ObjectRecord } from '../../../src/objects/store.ts';
import { readObjectsJournal } from '../../../src/vault/repository/index.ts';
import {
  objectStreamStatus,
  readObjectsWatermark,
  restoreStreamedObjects,
} from '../../../src/vault/stream/objects-status.ts';
import { openStreamRepository, storeObjectsBatch } from '../../../src/vault/stream/objects-store.ts';
import { type ObjectStreamEvent, runObjectStream } from '../../../src/vault/stream/objects-stream.ts';
import { resolveTargets } from '../../../src/vault/targets.ts';
import { fakePng, SAMPLE_PROMPT, startTestApi, type TestApi } from '../../support/api.ts';
import { runCli } from '../../support/cli.ts';
import { type S3Server, startS3Server } from '../../support/s3-server.ts';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.ts';
import { tempDir } from '../../support/temp.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../../support/vault-env.ts';
import { streamEnv, until, waitForRepository, waitForStreamed } from './support.ts';

const PASSWORD = 'stream password';

describe('objects streamed continuously to every backup target', () => {
  let s3: S3Server | undefined;
  let api: TestApi | undefined;
  let vault: VaultEnv | undefined;
  let proxy: TcpProxy | undefined;
  const children: Array<ReturnType<typeof runCli>> = [];
  afterAll(async () => {
    for (const child of children) child.child.kill('SIGKILL');
    await Promise.all(children);
    await proxy?.close();
    await api?.close();
    await vault?.close();
    await s3?.stop();
  });

  it('I11: an object uploaded through the API is in the local and the S3 repository within 5 s', async () => {
    s3 = await startS3Server({ buckets: ['offsite', 'dead'] });
    api = await startTestApi(offsiteEnv(s3, 's3://offsite/vault', PASSWORD));
    const streamer = runCli(['object-stream'], streamEnv(api.config));
    children.push(streamer);
    const local = await waitForRepository(api.config, 'local');
    const offsite = await waitForRepository(api.config, 's3');
    await until(
      'the streamer to register its targets',
      async () => (await objectStreamStatus(api!.db.sql, api!.config)).every((t) => t.recoverableUntil),
      20_000,
    );
    const prompt = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/p',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: SAMPLE_PROMPT('p'),
    });
    expect(prompt.statusCode).toBe(201);
    const trend = await api.app.inject({
      method: 'POST',
      url: '/api/v1/trends',
      headers: api.admin,
      payload: { slug: 't', title: 'T', prompt: 'p' },
    });
    expect(trend.statusCode).toBe(201);

    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const bytes = fakePng(20_000 + i);
      const upload = await api.app.inject({
        method: 'PUT',
        url: '/api/v1/trends/t/example',
        headers: { ...api.admin, 'content-type': 'image/png' },
        payload: bytes,
      });
      expect(upload.statusCode, upload.body).toBe(200);
      const { key } = upload.json() as { key: string };
      // From the 2xx (after the row's commit) until both repositories' journals name the object.
      const started = Date.now();
      await Promise.all([waitForStreamed(local, [key]), waitForStreamed(offsite, [key])]);
      latencies.push(Date.now() - started);
    }
    console.log(`object stream latency, 2xx → in local and S3 repositories (ms): ${latencies.join(', ')}`);
    expect(Math.max(...latencies)).toBeLessThan(5000);
    // Journals name an object just before the progress is marked in PostgreSQL.
    await until(
      'the progress marked',
      async () => (await objectStreamStatus(api!.db.sql, api!.config)).every((t) => t.pending === 0),
      5000,
    );
    const status = await objectStreamStatus(api.db.sql, api.config);
    expect(status.every((t) => (t.lagSeconds ?? 99) < 5)).toBe(true);
    const cli = await runCli(['object-stream', '--status', '--json'], streamEnv(api.config));
    expect(cli.code, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as Array<{
      target: string;
      pending: number;
      recoverableUntil: string;
    }>;
    expect(printed.map((t) => [t.target, t.pending])).toEqual([
      ['local', 0],
      ['s3', 0],
    ]);
    // The watermark the repository records covers the last upload (read with no database).
    await until(
      'the state record',
      async () => ((await readObjectsWatermark(local))?.getTime() ?? 0) > Date.now() - 5000,
      5000,
    );
  }, 120_000);

  it('I11: uploads committed one after another are streamed in batches spaced 500 ms apart, none left behind', async () => {
    const spaced = await startVaultEnv('stream-spaced');
    const config = loadConfig(spaced.env, { dotEnv: false });
    const stop = new AbortController();
    const batches: number[] = [];
    const streaming = runObjectStream({
      config,
      sql: spaced.db.sql,
      objects: spaced.objects.blobs,
      signal: stop.signal,
      onProgress: (event: ObjectStreamEvent) => {
        if (event.type === 'streamed') batches.push(event.objects);
      },
    });
    try {
      await until(
        'the streamer to register its target',
        async () => (await objectStreamStatus(spaced.db.sql, config))[0]?.recoverableUntil !== undefined,
        20_000,
      );
      // An upload every 40 ms for 3 s, each notifying the streamer as it commits.
      const keys: string[] = [];
      const started = Date.now();
      for (let i = 0; Date.now() - started < 3000; i++) {
        const record = await spaced.objects.put(Readable.from([fakePng(5_000 + i)]), {
          kind: 'photo',
          maxBytes: 1e9,
        });
        keys.push(record.key);
        await sleep(40);
      }
      const elapsed = Date.now() - started;
      const repo = await waitForRepository(config, 'local');
      await waitForStreamed(repo, keys, 10_000);
      console.log(
        `${keys.length} uploads over ${elapsed} ms streamed in ${batches.length} batches: ${batches.join(' ')}`,
      );
      expect(batches.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(keys.length);
      // One batch per notification would be one per upload; spaced, about one per 500 ms.
      expect(batches.length).toBeLessThanOrEqual(Math.ceil(elapsed / 500) + 3);
    } finally {
      stop.abort();
      await streaming;
      await spaced.close();
    }
  }, 120_000);

  it('I11: a streamer SIGKILLed mid-batch and restarted loses nothing and duplicates nothing harmful', async () => {
    vault = await startVaultEnv('stream-kill');
    const records: ObjectRecord[] = [];
    const contents = new Map<string, Buffer>();
    for (let i = 0; i < 200; i++) {
      const bytes = fakePng(150_000 + i);
      const record = await vault.objects.put(Readable.from([bytes]), { kind: 'photo', maxBytes: 1e9 });
      records.push(record);
      contents.set(record.key, bytes);
    }
    const config = loadConfig(vault.env, { dotEnv: false });
    const env = { ...vault.env, LOG_LEVEL: 'warn' };
    // A crash between a batch's journal record and its progress, made exactly: stored and named, not marked.
    const first = await openStreamRepository(config, resolveTargets(config, ['local'])[0]!);
    const early = records.slice(0, 5).map((r) => r.key);
    await storeObjectsBatch(first, vault.objects.blobs, early, async () => undefined);
    const journalDir = path.join(config.backup.dir, 'stream', 'objects', 'journal');
    const journals = () => (existsSync(journalDir) ? readdirSync(journalDir).length : 0);
    let kills = 0;
    const pendingNow = async () => (await objectStreamStatus(vault!.db.sql, config))[0]?.pending ?? 1;
    for (let round = 0; round < 3 && (await pendingNow()) > 0; round++) {
      const before = journals();
      const run = runCli(['object-stream'], env);
      // Killed as a batch's journal record lands, or a moment later while the next batch is being stored.
      await until(
        'a journal record',
        async () => journals() > before || run.child.exitCode !== null,
        30_000,
        2,
      );
      await sleep(Math.floor(Math.random() * 30));
      run.child.kill('SIGKILL');
      if ((await run).signal === 'SIGKILL') kills++;
    }
    const pending = await pendingNow();
    console.log(`after ${kills} SIGKILLs: ${pending} of ${records.length} objects still pending`);
    expect(kills).toBeGreaterThanOrEqual(2);

    const last = runCli(['object-stream'], env);
    children.push(last);
    const repo = await waitForRepository(config, 'local');
    await waitForStreamed(
      repo,
      records.map((r) => r.key),
      60_000,
    );
    await until(
      'the queue to empty',
      async () => (await objectStreamStatus(vault!.db.sql, config))[0]!.pending === 0,
      30_000,
    );
    const named = (await readObjectsJournal(repo)).records.flatMap((r) => r.objects.map((o) => o.key));
    console.log(`journal names ${named.length} objects for ${records.length} distinct ones`);
    expect(named.length).toBeGreaterThanOrEqual(records.length + early.length);
    const check = await repo.check({ readData: true });
    expect(check.ok, JSON.stringify(check.missingBlobs)).toBe(true);
    expect(check.unreadableStreamRecords).toEqual([]);

    // Restored from the stream alone into an empty object store: byte-identical.
    const restored = tempDir('stream-restore');
    const store = new FileBlobStore(path.join(restored.dir, 'objects'));
    const result = await restoreStreamedObjects(
      repo,
      records.map((r) => r.key),
      store,
    );
    expect(result).toMatchObject({ written: records.length, missing: [], damaged: [], unreadable: [] });
    for (const record of records) {
      const bytes = await readAll(await store.get(record.key));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(record.sha256);
      expect(bytes.equals(contents.get(record.key)!)).toBe(true);
    }
    restored.remove();
  }, 240_000);

  it('I11: a dead S3 target does not hold back the local one, and catches up when it returns', async () => {
    s3 ??= await startS3Server({ buckets: ['offsite', 'dead'] });
    proxy = await startTcpProxy(Number(new URL(s3.endpoint).port));
    const env = startVaultEnv('stream-dead-s3', {
      ...offsiteEnv(s3, 's3://dead/vault', PASSWORD),
      S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
    });
    const dead = await env;
    const config = loadConfig(dead.env, { dotEnv: false });
    const stop = new AbortController();
    const events: ObjectStreamEvent[] = [];
    proxy.setDown(true);
    const running = runObjectStream({
      config,
      sql: dead.db.sql,
      objects: dead.objects.blobs,
      signal: stop.signal,
      onProgress: (event) => events.push(event),
    });
    try {
      const record = await dead.objects.put(Readable.from([fakePng(30_000)]), {
        kind: 'photo',
        maxBytes: 1e9,
      });
      const local = await waitForRepository(config, 'local');
      const ms = await waitForStreamed(local, [record.key], 5000);
      console.log(`with S3 down, the local target held the object after ${ms} ms`);
      await until(
        'the S3 failure to be recorded',
        async () => {
          const [localNow, offsiteNow] = await objectStreamStatus(dead.db.sql, config);
          const reported = events.some((e) => e.type === 'target-failed' && e.target === 's3');
          return localNow!.pending === 0 && offsiteNow!.error !== undefined && reported;
        },
        20_000,
      );
      const [localStatus, s3Status] = await objectStreamStatus(dead.db.sql, config);
      expect(localStatus!.pending).toBe(0);
      expect(s3Status!.pending).toBe(1);
      expect(s3Status!.error).toBeDefined();
      expect(events.some((e) => e.type === 'target-failed' && e.target === 's3')).toBe(true);
      // The dead target's watermark stays below the object's commit; the local one passes it.
      const [row] = await dead.db.sql`select enqueued_at from object_stream_queue where key = ${record.key}`;
      expect(s3Status!.recoverableUntil!.getTime()).toBeLessThan((row!.enqueued_at as Date).getTime());
      expect(localStatus!.recoverableUntil!.getTime()).toBeGreaterThan((row!.enqueued_at as Date).getTime());

      proxy.setDown(false);
      const offsite = await waitForRepository(config, 's3', 60_000);
      await waitForStreamed(offsite, [record.key], 60_000);
      await until(
        'the S3 target to catch up',
        async () => {
          const [, offsiteStatus] = await objectStreamStatus(dead.db.sql, config);
          return offsiteStatus!.pending === 0 && offsiteStatus!.error === undefined;
        },
        10_000,
      );
      const after = await objectStreamStatus(dead.db.sql, config);
      expect(after[1]!.error).toBeUndefined();
      const [left] = await dead.db.sql`select count(*)::int as n from object_stream_queue`;
      expect(left!.n).toBe(0);
    } finally {
      stop.abort();
      await running;
      await dead.close();
    }
  }, 180_000);
});
