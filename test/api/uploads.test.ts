import { existsSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_INPUT_PIXELS } from '../../src/objects/image-check.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { walkFiles } from '../support/files.ts';
import { generationForm } from '../support/generation.ts';

/**
 * Every uploaded image (a trend's example, a generation's photo) is decoded whole before anything is stored
 * (issue 16 item 5): a polyglot, a truncated file, a decompression bomb or bytes that do not decode get a
 * 422 with one sentence, and leave no blob, no row and no spooled file behind.
 */
let api: TestApi;
let storageRoot: string;

beforeAll(async () => {
  api = await startTestApi();
  storageRoot = new URL(api.config.storageUrl).pathname;
  const put = await api.app.inject({
    method: 'PUT',
    url: '/api/v1/prompts/target',
    headers: { ...api.admin, 'content-type': 'application/yaml' },
    payload: 'name: target\ntitle: Target\nmodel: local\ntemplate: "Paint {subject}"\n',
  });
  expect(put.statusCode, put.body).toBe(201);
  const trend = await api.app.inject({
    method: 'POST',
    url: '/api/v1/trends',
    headers: api.admin,
    payload: { slug: 'victim', title: 'Victim', prompt: 'target' },
  });
  expect(trend.statusCode, trend.body).toBe(201);
});
afterAll(async () => api?.close());

type Route = 'example-raw' | 'example-multipart' | 'generation';
const ROUTES: Route[] = ['example-raw', 'example-multipart', 'generation'];

function send(route: Route, bytes: Buffer) {
  if (route === 'example-raw') {
    return api.app.inject({
      method: 'PUT',
      url: '/api/v1/trends/victim/example',
      headers: { ...api.admin, 'content-type': 'application/octet-stream' },
      payload: bytes,
    });
  }
  if (route === 'generation') {
    const form = generationForm({ trend: 'victim', user: 'mallory', variants: '1' }, bytes);
    return api.app.inject({
      method: 'POST',
      url: '/api/v1/generations',
      headers: { ...api.client, 'content-type': form.contentType },
      payload: form.payload,
    });
  }
  const boundary = `----upload${Math.random().toString(16).slice(2)}`;
  return api.app.inject({
    method: 'PUT',
    url: '/api/v1/trends/victim/example',
    headers: { ...api.admin, 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n`),
      bytes,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]),
  });
}

async function storedState() {
  const [objects] = await api.db.sql`select count(*)::int as n from objects`;
  const [generations] = await api.db.sql`select count(*)::int as n from generations`;
  const [trend] = await api.db.sql`select example_key from trends where slug = 'victim'`;
  const blobs = existsSync(storageRoot) ? walkFiles(storageRoot).length : 0;
  const spool = path.join(api.config.dataDir, 'tmp');
  const spooled = existsSync(spool) ? walkFiles(spool).length : 0;
  return { objects: objects!.n, generations: generations!.n, example: trend!.example_key, blobs, spooled };
}

/** Refused on every route with a 422 and a sentence matching `reason`; nothing stored, nothing spooled. */
async function expectRefused(bytes: Buffer, reason: RegExp): Promise<void> {
  for (const route of ROUTES) {
    const before = await storedState();
    const response = await send(route, bytes);
    const what = `${route} ${bytes.length}B: ${response.statusCode} ${response.body}`;
    expect(response.statusCode, what).toBe(422);
    const { error } = response.json() as { error: { code: string; message: string } };
    expect(error.code, what).toBe('invalid_image');
    expect(error.message, what).toMatch(reason);
    expect(error.message.split('\n'), what).toHaveLength(1);
    expect(error.message, what).toMatch(/: [a-z].*\.$/); // what is wrong: what to do.
    expect(await storedState(), what).toEqual({ ...before, spooled: 0 });
  }
}

async function expectStored(bytes: Buffer): Promise<void> {
  for (const route of ROUTES) {
    const response = await send(route, bytes);
    expect([200, 202], `${route}: ${response.statusCode} ${response.body}`).toContain(response.statusCode);
  }
}

const photo = (format: 'png' | 'jpeg' | 'webp', width = 320, height = 240) =>
  sharp({
    create: { width, height, channels: 3, background: { r: 200, g: 120, b: 40 } },
  })
    .composite([
      {
        input: Buffer.from(
          `<svg width="${width}" height="${height}"><circle cx="50%" cy="50%" r="30%"/></svg>`,
        ),
      },
    ])
    .toFormat(format)
    .toBuffer();

function pngChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A real PNG of width × height one-bit grey pixels, all black: zeros deflate about 1000 to 1. */
function blackPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8);
  const raw = Buffer.alloc((1 + Math.ceil(width / 8)) * height);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('uploads are decoded whole before anything is stored', () => {
  it('controls: intact PNG, JPEG and WebP images are stored on every route', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const) await expectStored(await photo(format));
  });

  it('a decompression bomb (20000×20000 pixels in a few KB) is refused by its pixel count', async () => {
    const bomb = blackPng(20_000, 20_000);
    expect(bomb.length).toBeLessThan(100_000);
    await expectRefused(bomb, new RegExp(`400000000 pixels, more than the limit of ${MAX_INPUT_PIXELS}`));
  });

  it('polyglots: bytes after PNG IEND, JPEG EOI or the WebP RIFF size are refused', async () => {
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60, 7)]);
    const html = Buffer.from('<html><script>alert(document.cookie)</script></html>');
    await expectRefused(Buffer.concat([await photo('png'), zip]), /followed by 64 bytes that are not part/);
    await expectRefused(Buffer.concat([await photo('jpeg'), html]), /JPEG image is followed by \d+ bytes/);
    await expectRefused(Buffer.concat([await photo('webp'), html]), /WebP image is followed by \d+ bytes/);
    // A single trailing byte is as foreign as a whole file.
    await expectRefused(Buffer.concat([await photo('png'), Buffer.from([0])]), /followed by 1 bytes/);
  });

  it('truncated images are refused, whichever byte they stop at', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const) {
      const whole = await photo(format, 640, 480);
      for (const keep of [0.3, 0.7, 0.99]) {
        await expectRefused(
          whole.subarray(0, Math.floor(whole.length * keep)),
          /truncated|could not be decoded/,
        );
      }
    }
  });

  it('bytes that do not decode are refused: pixel data replaced by noise, intact container', async () => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(64, 0);
    ihdr.writeUInt32BE(64, 4);
    ihdr.set([8, 2, 0, 0, 0], 8);
    const noise = Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 151 + 17) & 0xff));
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      pngChunk('IHDR', ihdr),
      pngChunk('IDAT', noise),
      pngChunk('IEND', Buffer.alloc(0)),
    ]);
    await expectRefused(png, /PNG image could not be decoded \(.+\): upload an intact/);
  });

  it('a large image is decoded off the event loop: a broken one is refused while timers keep firing', async () => {
    // 4000×4000, cut in the middle of its entropy-coded data and closed with EOI: the container is whole,
    // only decoding finds that half the image is missing.
    const whole = await sharp({
      create: { width: 4000, height: 4000, channels: 3, background: { r: 10, g: 200, b: 90 } },
    })
      .composite([
        { input: Buffer.from('<svg width="4000" height="4000"><circle cx="50%" cy="50%" r="40%"/></svg>') },
      ])
      .jpeg({ quality: 95 })
      .toBuffer();
    const broken = Buffer.concat([
      whole.subarray(0, Math.floor(whole.length / 2)),
      Buffer.from([0xff, 0xd9]),
    ]);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = Date.now();
    const response = await send('example-raw', broken);
    const took = Date.now() - started;
    delay.disable();
    expect(response.statusCode, response.body).toBe(422);
    expect(response.json().error.message).toMatch(/JPEG image could not be decoded/);
    // The decode runs in libuv's pool: the loop's worst stall stays far below the decode's own time.
    expect(delay.max / 1e6, `max loop delay, decode took ${took} ms`).toBeLessThan(150);
  });
});
