import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { ensureDatabase, openDatabase, type Sql } from '../../src/db/connection.ts';
import { migrate } from '../../src/db/migrate.ts';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { ObjectStore } from '../../src/objects/store.ts';

/**
 * The benchmark's dataset, laid out like a deployment of the service under one temp folder `root`:
 *
 *   root/services/            the throwaway PostgreSQL and Redis (started with the project's own code)
 *   root/prompts/*.yaml       the prompts folder (PROMPTS_DIR)
 *   root/data/objects/        the object store (STORAGE_URL=file://…), written through ObjectStore
 *   root/data/trend_examples/ the classic layout, hard links to the same image files, for the classic
 *   root/data/generated_images/  script and restic
 */

export interface Scale {
  name: 'small' | 'full' | 'files';
  rows: number;
  prompts: number;
  images: number;
  /** Image sizes, bytes: skewed towards the small end. */
  imageBytes: { min: number; max: number };
  redisJobs: number;
  /** Prompt files edited by "a day's change". */
  promptEdits: number;
}

const PHOTOS = { min: 200 * 1024, max: 1024 * 1024 };

export const SCALES: Record<Scale['name'], Scale> = {
  small: {
    name: 'small',
    rows: 100_000,
    prompts: 50,
    images: 400,
    imageBytes: PHOTOS,
    redisJobs: 1_000,
    promptEdits: 3,
  },
  full: {
    name: 'full',
    rows: 1_000_000,
    prompts: 200,
    images: 4_000,
    imageBytes: PHOTOS,
    redisJobs: 5_000,
    promptEdits: 5,
  },
  // Many small files (thumbnails, previews) beside a table of millions of rows: per-file costs dominate.
  files: {
    name: 'files',
    rows: 3_000_000,
    prompts: 200,
    images: 40_000,
    imageBytes: { min: 10 * 1024, max: 50 * 1024 },
    redisJobs: 5_000,
    promptEdits: 5,
  },
};
/** Share of images that are trend examples; the rest are generated outputs. */
const EXAMPLE_SHARE = 0.05;
const TRENDS = [
  'neon-portrait',
  'retro-anime',
  'oil-painting',
  'cyberpunk-city',
  'watercolor-pet',
  'pixel-hero',
  'vintage-film',
  'clay-figure',
  'pop-art',
  'studio-ghibli-sky',
];
const WORDS =
  'soft light golden hour cinematic portrait detailed skin texture film grain shallow depth of field bokeh vivid colour palette dramatic shadows pastel tones ink outlines watercolour wash painterly strokes high contrast rim light moody atmosphere neon reflections rain-soaked street vintage lens flare symmetrical composition centred subject wide angle close-up studio backdrop'.split(
    ' ',
  );

export interface ImageRecord {
  key: string;
  size: number;
  /** The same inode in the classic layout, relative to root. */
  classicPath: string;
}

export interface DayChange {
  images: ImageRecord[];
  prompts: Array<{ file: string; original: string }>;
  rowsFrom: number;
  rowsTo: number;
  promptVersions: string[];
  /** New image bytes + edited prompt files + growth of the plain SQL dump. */
  changedBytes: number;
  dumpGrowth: number;
}

export interface Dataset {
  root: string;
  scale: Scale;
  postgres: EmbeddedPostgres;
  redis: EmbeddedRedis;
  pgPid: number;
  pgPort: number;
  /** Admin URL (database postgres) and the service database URL. */
  adminUrl: string;
  databaseUrl: string;
  redisUrl: string;
  pgUser: string;
  pgPassword: string;
  sql: Sql;
  objects: ObjectStore;
  images: ImageRecord[];
  promptFiles: string[];
  /** Size of a plain `pg_dump` of the service database in its base state. */
  baseDumpBytes: number;
  rows: number;
  imageBytes: number;
}

/** Deterministic pseudo-random numbers (mulberry32): the same scale gives the same sizes every time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JPEG_HEAD = Buffer.from([
  0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01,
  0x00, 0x00,
]);

/** Random bytes behind a JPEG header and before its end marker: incompressible, like real photos. */
function fakeJpeg(size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  JPEG_HEAD.copy(bytes, 0);
  randomFillSync(bytes, JPEG_HEAD.length, size - JPEG_HEAD.length - 2);
  bytes[size - 2] = 0xff;
  bytes[size - 1] = 0xd9;
  return bytes;
}

/** The rows of the generations-like table, seq in [from, to]: uuid, text, jsonb, timestamps. */
function generationRowsSql(from: number, to: number, prompts: number): string {
  const trends = `array[${TRENDS.map((t) => `'${t}'`).join(',')}]`;
  return `
    select i as seq,
      md5('generation-' || i)::uuid as id,
      'user_' || lpad(((i::bigint * 7919) % 60000)::text, 6, '0') as user_id,
      (${trends})[1 + i % ${TRENDS.length}] as trend_slug,
      'prompt-' || lpad((i % ${prompts})::text, 3, '0') as prompt_name,
      1 + i % 3 as prompt_version,
      jsonb_build_object(
        'style', (array['photo','anime','oil','ink','clay'])[1 + i % 5],
        'seed', ('x' || substr(md5('seed' || i), 1, 8))::bit(32)::int,
        'strength', round(((i * 37) % 1000) / 1000.0, 3),
        'size', (array['small','medium','large','hd'])[1 + i % 4],
        'steps', 20 + i % 30,
        'guidance', 5 + (i % 11) / 2.0,
        'negative', 'blurry, watermark',
        'request_id', substr(md5('req' || i), 1, 20)
      ) as params,
      1 + i % 4 as variants,
      'photo/' || substr(h, 1, 2) || '/' || h || '.jpg' as photo_key,
      case when i % 50 = 0 then 'failed' when i % 997 = 0 then 'queued' else 'succeeded' end as status,
      1 + (i % 7 = 0)::int as attempts,
      case when i % 50 = 0 then 'provider timeout after 300 s (request ' || substr(md5('e' || i), 1, 16) || ')' end as error,
      ts as created_at,
      ts + interval '2 seconds' as started_at,
      ts + (5 + i % 40) * interval '1 second' as finished_at,
      ts + (5 + i % 40) * interval '1 second' as updated_at
    from generate_series(${from}, ${to}) as i,
      lateral (select encode(sha256(('photo-' || i)::bytea), 'hex') as h,
        timestamptz '2025-01-01 00:00:00+00' + i * interval '7 seconds' as ts) as x`;
}

function promptYaml(name: string, index: number, revision: number): string {
  const random = prng(1000 + index);
  const sentence = (n: number) =>
    Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]!).join(' ');
  const paragraphs = Array.from({ length: 6 + (index % 5) }, () => `  ${sentence(30 + (index % 20))}.`);
  return [
    `name: ${name}`,
    `title: "${TRENDS[index % TRENDS.length]} variant ${index}"`,
    'model: gpt-image-1',
    'template: |',
    `  Transform the photo of {{subject}} into a ${TRENDS[index % TRENDS.length]} image. Revision ${revision}.`,
    ...paragraphs,
    `negative: "${sentence(12)}"`,
    'parameters:',
    `  temperature: ${((index % 10) / 10 + 0.2).toFixed(1)}`,
    `  seed: ${1000 + index}`,
    `  size: ${['small', 'medium', 'large', 'hd'][index % 4]}`,
    `tags: [${TRENDS[index % TRENDS.length]}, bench]`,
    '',
  ].join('\n');
}

/** Runs `limit` workers over the items. */
async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await fn(items[index]!, index);
      }
    }),
  );
}

export function pgEnv(ds: Pick<Dataset, 'pgPort' | 'pgUser' | 'pgPassword'>): Record<string, string> {
  return {
    PGHOST: '127.0.0.1',
    PGPORT: String(ds.pgPort),
    PGUSER: ds.pgUser,
    PGPASSWORD: ds.pgPassword,
  };
}

/** Bytes of a plain `pg_dump` of the service database (what the classic script and restic read). */
export async function plainDumpBytes(ds: Dataset): Promise<number> {
  return await new Promise((resolve, reject) => {
    const child = spawn(findPostgresBinary('pg_dump'), ['--no-password', 'trends'], {
      env: { ...process.env, ...pgEnv(ds) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(bytes) : reject(new Error(`pg_dump failed (${code}): ${stderr.trim()}`)),
    );
  });
}

async function putImage(ds: Dataset, random: () => number, index: number): Promise<ImageRecord> {
  const { min, max } = ds.scale.imageBytes;
  const size = Math.floor(min + random() ** 1.6 * (max - min));
  const example = random() < EXAMPLE_SHARE;
  const record = await ds.objects.put(Readable.from([fakeJpeg(size)]), {
    kind: example ? 'example' : 'output',
    maxBytes: 20 * 1024 * 1024,
  });
  const file = path.basename(record.key);
  const day = new Date(Date.UTC(2025, 0, 1) + (index % 120) * 86_400_000).toISOString().slice(0, 10);
  const classicPath = example
    ? path.join('data', 'trend_examples', TRENDS[index % TRENDS.length]!, file)
    : path.join('data', 'generated_images', day, file);
  const target = path.join(ds.root, classicPath);
  mkdirSync(path.dirname(target), { recursive: true });
  linkSync(path.join(ds.root, 'data', 'objects', ...record.key.split('/')), target);
  return { key: record.key, size: record.size, classicPath };
}

/** Starts the services and builds the dataset; `log` reports progress. */
export async function createDataset(
  root: string,
  scale: Scale,
  log: (message: string) => void,
  register: (ds: Partial<Dataset>) => void,
): Promise<Dataset> {
  const servicesRoot = path.join(root, 'services');
  const postgres = new EmbeddedPostgres({ root: servicesRoot, user: 'trends', database: 'trends', port: 0 });
  const redis = new EmbeddedRedis({ root: servicesRoot, port: 0, appendfsync: 'everysec' });
  register({ postgres, redis });
  log('starting PostgreSQL and Redis');
  const [pg, rd] = await Promise.all([postgres.start(), redis.start()]);
  const adminUrl = postgres.url(pg.port, 'postgres');
  await ensureDatabase(adminUrl, 'trends');
  const databaseUrl = postgres.url(pg.port, 'trends');
  const sql = openDatabase(databaseUrl, { max: 4 });
  register({ sql });
  await migrate(sql);
  const blobs = new FileBlobStore(path.join(root, 'data', 'objects'));
  const ds: Dataset = {
    root,
    scale,
    postgres,
    redis,
    pgPid: pg.pid,
    pgPort: pg.port,
    adminUrl,
    databaseUrl,
    redisUrl: rd.url,
    pgUser: 'trends',
    pgPassword: decodeURIComponent(new URL(databaseUrl).password),
    sql,
    objects: new ObjectStore(sql, blobs, path.join(root, 'data', 'tmp', 'uploads')),
    images: [],
    promptFiles: [],
    baseDumpBytes: 0,
    rows: scale.rows,
    imageBytes: 0,
  };

  log(`writing ${scale.prompts} prompt files and their history`);
  mkdirSync(path.join(root, 'prompts'), { recursive: true });
  for (let i = 0; i < scale.prompts; i++) {
    const name = `prompt-${String(i).padStart(3, '0')}`;
    const file = path.join(root, 'prompts', `${name}.yaml`);
    const versions = [1, 2, 3].map((revision) => promptYaml(name, i, revision));
    writeFileSync(file, versions.at(-1)!);
    ds.promptFiles.push(file);
    await sql`insert into prompts (name, current_version, file_sha256)
      values (${name}, 3, ${createHash('sha256').update(versions.at(-1)!).digest('hex')})`;
    for (const [v, content] of versions.entries()) {
      await sql`insert into prompt_versions (name, version, sha256, content, origin)
        values (${name}, ${v + 1}, ${createHash('sha256').update(content).digest('hex')}, ${content}, 'file')`;
    }
  }

  log(`inserting ${scale.rows.toLocaleString('en')} generation rows`);
  await sql.unsafe(
    `create table bench_generations as ${generationRowsSql(1, scale.rows, scale.prompts)} order by seq`,
  );
  await sql.unsafe('alter table bench_generations add primary key (id)');
  await sql.unsafe('create index bench_generations_user on bench_generations (user_id, created_at desc)');

  log(`writing ${scale.images} images through ObjectStore`);
  const random = prng(42);
  const sizes: ImageRecord[] = new Array(scale.images);
  let done = 0;
  await pool(
    Array.from({ length: scale.images }, (_, i) => i),
    4,
    async (i) => {
      sizes[i] = await putImage(ds, random, i);
      if (++done % 500 === 0) log(`  ${done}/${scale.images} images`);
    },
  );
  ds.images = sizes;
  ds.imageBytes = sizes.reduce((sum, image) => sum + image.size, 0);
  const examples = ds.images.filter((image) => image.key.startsWith('example/'));
  for (const [i, slug] of TRENDS.entries()) {
    await sql`insert into trends (slug, title, prompt_name, params, example_key, position)
      values (${slug}, ${slug.replaceAll('-', ' ')}, ${`prompt-${String(i % scale.prompts).padStart(3, '0')}`},
        ${sql.json({ strength: 0.7 })}, ${examples[i % Math.max(1, examples.length)]?.key ?? null}, ${i})`;
  }

  log(`filling Redis with ${scale.redisJobs} queue entries`);
  const client = new Redis(ds.redisUrl, { maxRetriesPerRequest: 2 });
  try {
    const batch = client.pipeline();
    for (let i = 0; i < scale.redisJobs; i++) {
      batch.hset(`bull:generations:${i}`, {
        name: 'generate',
        data: JSON.stringify({ generationId: `gen-${i}`, userId: `user_${i % 600}`, variants: 1 + (i % 4) }),
        opts: JSON.stringify({ attempts: 5, backoff: { type: 'exponential', delay: 1000 } }),
        timestamp: String(1_735_689_600_000 + i * 1000),
      });
      if (i % 10 === 0) batch.set(`ratelimit:user_${i % 600}`, String(i % 20), 'EX', 86_400);
      if (i % 1000 === 999) await batch.exec().then(() => undefined);
    }
    await batch.exec();
  } finally {
    client.disconnect();
  }

  log('vacuum analyze and checkpoint');
  await sql.unsafe('vacuum analyze');
  await sql.unsafe('checkpoint');
  ds.baseDumpBytes = await plainDumpBytes(ds);
  return ds;
}

let changeCounter = 0;

/** "A day's change": 2% new images, a few prompts edited (with a new version row), 1% new rows. */
export async function applyDayChange(ds: Dataset): Promise<DayChange> {
  changeCounter++;
  const { scale, sql } = ds;
  const random = prng(7000 + changeCounter);
  const count = Math.max(1, Math.round(scale.images * 0.02));
  const images: ImageRecord[] = [];
  for (let i = 0; i < count; i++) images.push(await putImage(ds, random, scale.images + i));
  const prompts: DayChange['prompts'] = [];
  const promptVersions: string[] = [];
  let promptBytes = 0;
  for (let i = 0; i < scale.promptEdits; i++) {
    const index = (i * 7 + changeCounter) % ds.promptFiles.length;
    const file = ds.promptFiles[index]!;
    const original = readFileSync(file, 'utf8');
    const name = path.basename(file, '.yaml');
    const edited = original.replace(/Revision \d+\./, `Revision 4, edited on day ${changeCounter}.`);
    writeFileSync(file, edited);
    prompts.push({ file, original });
    promptBytes += Buffer.byteLength(edited);
    await sql`insert into prompt_versions (name, version, sha256, content, origin)
      values (${name}, 4, ${createHash('sha256').update(edited).digest('hex')}, ${edited}, 'file')`;
    await sql`update prompts set current_version = 4 where name = ${name}`;
    promptVersions.push(name);
  }
  const rowsFrom = ds.rows + 1;
  const rowsTo = ds.rows + Math.round(scale.rows * 0.01);
  await sql.unsafe(
    `insert into bench_generations ${generationRowsSql(rowsFrom, rowsTo, scale.prompts)} order by seq`,
  );
  await sql.unsafe('checkpoint');
  const dumpGrowth = (await plainDumpBytes(ds)) - ds.baseDumpBytes;
  const imageBytes = images.reduce((sum, image) => sum + image.size, 0);
  return {
    images,
    prompts,
    rowsFrom,
    rowsTo,
    promptVersions,
    changedBytes: imageBytes + promptBytes + Math.max(0, dumpGrowth),
    dumpGrowth,
  };
}

/** Puts the dataset back in its base state, so every run measures the same data. */
export async function revertDayChange(ds: Dataset, change: DayChange): Promise<void> {
  const { sql } = ds;
  const keys = change.images.map((image) => image.key);
  if (keys.length) await sql`delete from objects where key = any(${keys})`;
  for (const image of change.images) {
    rmSync(path.join(ds.root, image.classicPath), { force: true });
    rmSync(path.join(ds.root, 'data', 'objects', ...image.key.split('/')), { force: true });
  }
  for (const { file, original } of change.prompts) writeFileSync(file, original);
  // prompt_versions is append-only by trigger: lift it for the revert only.
  await sql.begin(async (tx) => {
    await tx.unsafe('alter table prompt_versions disable trigger prompt_versions_append_only');
    await tx`delete from prompt_versions where version = 4 and name = any(${change.promptVersions})`;
    await tx.unsafe('alter table prompt_versions enable trigger prompt_versions_append_only');
    await tx`update prompts set current_version = 3 where name = any(${change.promptVersions})`;
  });
  await sql`delete from bench_generations where seq > ${ds.rows}`;
  await sql`delete from backup_runs`;
  await sql.unsafe('vacuum analyze');
  await sql.unsafe('checkpoint');
}
