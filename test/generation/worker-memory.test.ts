import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTrendWithPrompt, postGeneration, waitForStatus } from '../support/generation.ts';
import { tempDir } from '../support/temp.ts';

/**
 * The worker's memory on the largest photo it accepts (issue 16 item 5): a 49-megapixel input peaked
 * `trendgen worker` at 462 MB. A progressive JPEG is the worst case: libjpeg keeps every DCT coefficient of
 * the image while it decodes (7000² × 1.5 samples × 2 bytes = 147 MB), whatever the output size; the whole
 * decode adds 180–250 MB to a process (measured alone). The bound: the idle worker (~95 MB) plus one such
 * decode (250 MB) plus 55 MB for the rest of the job and the allocator. Before the bound (libvips' cache
 * on, one full-size decode per variant) this test measured 621 MB. Figures: docs/benchmarks.md, "The worker's memory".
 */
const BOUND_MB = 400;

describe('trendgen worker on a 49-megapixel photo', () => {
  const temp = tempDir('worker-memory');
  // A Redis of its own: `trendgen worker` uses BullMQ's default queue prefix, which other test files share.
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  let api: TestApi;
  let redisUrl: string;
  beforeAll(async () => {
    redisUrl = (await redis.start()).url;
    api = await startTestApi({ REDIS_URL: redisUrl }, { redisUrl, queuePrefix: 'bull' });
    await createTrendWithPrompt(api);
  });
  afterAll(async () => {
    await api?.close();
    await redis.stop();
    temp.remove();
  });

  it(`renders three variants with a peak resident set (VmHWM) under ${BOUND_MB} MB`, async () => {
    const side = 7000;
    const raw = Buffer.alloc(side * side * 3);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const i = (y * side + x) * 3;
        raw[i] = (x * 255) / side;
        raw[i + 1] = (y * 255) / side;
        raw[i + 2] = ((x >> 6) + (y >> 6)) & 1 ? 200 : 30;
      }
    }
    const photo = await sharp(raw, {
      raw: { width: side, height: side, channels: 3 },
      limitInputPixels: false,
    })
      .jpeg({ quality: 90, progressive: true })
      .toBuffer();
    const worker = runCli(['worker'], {
      DATABASE_URL: api.db.url,
      REDIS_URL: redisUrl,
      DATA_DIR: api.config.dataDir,
      PROMPTS_DIR: api.config.promptsDir,
      BACKUP_DIR: api.config.backup.dir,
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: '2',
    });
    let peakKb = 0;
    const sample = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${worker.child.pid}/status`, 'utf8');
        peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
      } catch {
        // Exited between samples.
      }
    }, 20);
    let idleMb = 0;
    try {
      // Idle first (connected, sharp loaded, waiting for jobs): what the photo adds is the rest.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      idleMb = Math.round(peakKb / 1024);
      const posted = await postGeneration(api, { trend: 'ghibli', user: 'ada', variants: '3' }, photo);
      expect(posted.statusCode, JSON.stringify(posted.body)).toBe(202);
      const done = await waitForStatus(api, posted.body.id, ['succeeded', 'failed'], 180_000);
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect(done.outputs).toHaveLength(3);
    } finally {
      clearInterval(sample);
      worker.child.kill('SIGTERM');
      const exited = await worker;
      if (exited.code !== 0) console.log(exited.stderr);
    }
    const peakMb = Math.round(peakKb / 1024);
    console.log(`trendgen worker peak RSS: idle ${idleMb} MB, on a 49 MP progressive JPEG ${peakMb} MB`);
    expect(peakMb).toBeGreaterThan(0);
    expect(peakMb).toBeLessThan(BOUND_MB);
  });
});
