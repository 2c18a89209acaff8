import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStoreError, createBlobStore, S3BlobStore } from '../../src/blobstore/index.ts';
import { closedPort } from '../support/ports.ts';
import { startS3FaultProxy } from '../support/s3-fault-proxy.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { blobStoreContract, randomStream } from './contract.ts';
import { blobRangeContract } from './range-contract.ts';

const BUCKET = 'trendgen-test';
let server: S3Server;
let run = 0;

beforeAll(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
});
afterAll(async () => {
  await server?.stop();
});

blobStoreContract(
  's3',
  async () => {
    // One fresh prefix per case: an empty store without restarting the server.
    const store = createBlobStore(`s3://${BUCKET}/contract/case-${++run}`, server.settings);
    return { store, dispose: async () => store.close?.() };
  },
  { nestedOrderGap: '(s3rver walks folders: it lists "a/c" before "a-b" and "x-1" before "x")' },
);

blobRangeContract('s3', async () => {
  const store = createBlobStore(`s3://${BUCKET}/range/case-${++run}`, server.settings);
  return { store, dispose: async () => store.close?.() };
});

describe('S3BlobStore', () => {
  it('a ranged read whose body is cut short is asked again, and fails in one sentence only when it keeps being cut', async () => {
    const proxy = await startS3FaultProxy(server.settings.endpoint!, { fraction: 0.3 });
    const prefix = `cut-ranges-${++run}`;
    const through = (maxAttempts: number) =>
      new S3BlobStore({
        bucket: BUCKET,
        prefix,
        settings: { ...server.settings, endpoint: proxy.endpoint },
        maxAttempts,
      });
    const store = through(5);
    const pack = randomBytes(256 * 1024);
    try {
      await store.put('packs/p', pack);
      proxy.setMode('truncate', 7);
      for (let i = 0; i < 8; i++) {
        const offset = i * 30_000;
        expect(
          (await store.getRange('packs/p', offset, 20_000)).equals(pack.subarray(offset, offset + 20_000)),
        ).toBe(true);
      }
      expect(proxy.counts.faulted).toBeGreaterThan(0);
      proxy.setMode('truncate', 7);
      const once = through(1);
      const errors = await Promise.all(
        Array.from({ length: 20 }, () => once.getRange('packs/p', 0, 20_000).catch((e: unknown) => e)),
      );
      expect(
        errors.some(
          (e) => e instanceof BlobStoreError && /cut short|unreachable \(ECONNRESET\)/.test(e.message),
        ),
      ).toBe(true);
      await once.close();
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 60_000);

  it('a fully stalled endpoint is given up on after the idle timeout, in one sentence', async () => {
    // Accepts connections and never answers a byte.
    const held: import('node:net').Socket[] = [];
    const stalled = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const { port } = stalled.address() as { port: number };
    const store = new S3BlobStore({
      bucket: BUCKET,
      settings: { ...server.settings, endpoint: `http://127.0.0.1:${port}` },
      maxAttempts: 2,
      idleTimeoutMs: 500,
    });
    const started = Date.now();
    try {
      const error = await store.put('stalled', Buffer.from('x')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlobStoreError);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => stalled.close(resolve));
      await store.close();
    }
  }, 30_000);

  it('I1: a 20 MiB stream is stored as a multipart upload of 8 MiB parts', async () => {
    const store = new S3BlobStore({ bucket: BUCKET, prefix: 'multipart', settings: server.settings });
    // Watches the requests that go out (s3rver's ETags do not tell multipart objects apart).
    const sent: string[] = [];
    (await store['sdk']()).client.middlewareStack.add(
      (next, context) => (args) => {
        sent.push(`${context.commandName}:${(args.input as { PartNumber?: number }).PartNumber ?? ''}`);
        return next(args);
      },
      { step: 'initialize' },
    );
    await store.put('big', randomStream(20 * 1024 * 1024).stream);
    await store.put('small', randomStream(1024).stream);
    expect(sent.sort()).toEqual([
      'CompleteMultipartUploadCommand:',
      'CreateMultipartUploadCommand:',
      'PutObjectCommand:',
      'UploadPartCommand:1',
      'UploadPartCommand:2',
      'UploadPartCommand:3',
    ]);
    expect((await store.head('big'))?.size).toBe(20 * 1024 * 1024);
    await store.close();
  });

  it('I10: an unreachable endpoint gives one plain sentence quickly, without secrets', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const secret = `secret-${randomBytes(6).toString('hex')}`;
    const store = new S3BlobStore({
      bucket: BUCKET,
      settings: { ...server.settings, endpoint, secretAccessKey: secret },
      maxAttempts: 2,
    });
    const started = Date.now();
    for (const attempt of [
      () => store.put('x', Buffer.from('1')),
      () => store.get('x'),
      () => store.head('x'),
      () => store.getRange('x', 0, 1),
      async () => {
        for await (const _ of store.list()) break;
      },
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlobStoreError);
      expect((error as Error).message).toBe(
        `The S3 endpoint ${endpoint} is unreachable (ECONNREFUSED): check S3_ENDPOINT and the network.`,
      );
    }
    expect(Date.now() - started).toBeLessThan(5_000);
    await store.close();
  });

  it('I10: a missing bucket is named in one sentence', async () => {
    const store = createBlobStore('s3://no-such-bucket/x', server.settings);
    const expected = `The bucket no-such-bucket does not exist at ${server.endpoint}: create it or correct the bucket in the s3:// URL.`;
    await expect(store.put('k', Buffer.from('1'))).rejects.toThrow(expected);
    await expect(store.get('k')).rejects.toThrow(expected);
    await expect(store.getRange('k', 0, 1)).rejects.toThrow(expected);
    await expect(store.put('k', randomStream(9 * 1024 * 1024).stream)).rejects.toThrow(expected);
    await expect((async () => store.list()[Symbol.asyncIterator]().next())()).rejects.toThrow(expected);
    await store.close?.();
  });

  it('I10: wrong credentials are named without showing the secret', async () => {
    const secret = `secret-${randomBytes(6).toString('hex')}`;
    const store = new S3BlobStore({
      bucket: BUCKET,
      settings: { ...server.settings, accessKeyId: 'WRONG', secretAccessKey: secret },
    });
    const error = await store.put('k', Buffer.from('1')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlobStoreError);
    expect((error as Error).message).toMatch(
      /^The S3 endpoint .* refused the credentials for bucket trendgen-test \(\w+\): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY/,
    );
    expect((error as Error).message).not.toContain(secret);
    await store.close();
  });
});
