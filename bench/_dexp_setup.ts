import { writeFileSync } from 'node:fs';
import { openDatabase } from '../src/db/connection.ts';
import { EmbeddedPostgres } from '../src/embedded/postgres.ts';

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
const root = '/var/tmp/dexp';
const pgc = new EmbeddedPostgres({ root, user: 'trends', database: 'trends', port: 0 });
const pg = await pgc.start();
const admin = openDatabase(pgc.url(pg.port, 'postgres'), { max: 1 });
await admin.unsafe('create database trends').catch(() => {});
await admin.end();
const url = pgc.url(pg.port, 'trends');
const sql = openDatabase(url, { max: 1 });
await sql.unsafe('drop table if exists bench_generations');
await sql.unsafe(`create table bench_generations as ${generationRowsSql(1, 3_000_000, 200)} order by seq`);
await sql.unsafe('alter table bench_generations add primary key (id)');
await sql.unsafe('create index bench_generations_user on bench_generations (user_id, created_at desc)');
await sql.unsafe('vacuum analyze');
await sql.unsafe('checkpoint');
writeFileSync('/var/tmp/dexp/url', url);
await sql.end();
console.log(url, 'pid', pg.pid);
