import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, createReadStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { FileBlobStore } from '../blobstore/file.ts';
import type { Config } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { EmbeddedPostgres } from '../embedded/postgres.ts';
import { liveObjects } from '../objects/queries.ts';
import { historyGaps } from '../prompts/index.ts';
import { amcheckDatabase } from './amcheck.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import { runRestore } from './restore.ts';
import { dropAndRecreateDatabase } from './sources/postgres-admin.ts';
import { verifyRedis } from './sources/redis.ts';
import { startScratchRedis } from './sources/redis-tools.ts';
import type { RedisFacts } from './sources/types.ts';

export interface DrillCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DrillReport {
  status: 'passed' | 'failed';
  snapshot: { id: string; time: string };
  /** Seconds from the start of the restore to the end of verification: the measured recovery time. */
  recoverySeconds: number;
  checks: DrillCheck[];
  reason?: string;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A database for the drill: DRILL_DATABASE_URL's server (a fresh database on it), or a throwaway local PostgreSQL. */
async function scratchDatabase(config: Config, dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  if (config.drill.databaseUrl) {
    const url = new URL(config.drill.databaseUrl);
    url.pathname = `/trendgen_drill_${randomBytes(4).toString('hex')}`;
    await dropAndRecreateDatabase(url.toString());
    return {
      url: url.toString(),
      stop: async () => {
        const admin = new URL(url);
        admin.pathname = '/postgres';
        const sql = openDatabase(admin.toString(), { max: 1 });
        await sql
          .unsafe(`drop database if exists "${url.pathname.slice(1)}" with (force)`)
          .finally(() => sql.end());
      },
    };
  }
  mkdirSync(dir, { recursive: true });
  // The unprivileged PostgreSQL user must be able to enter the scratch folder when we run as root.
  chmodSync(dir, 0o755);
  const pg = new EmbeddedPostgres({
    root: dir,
    user: 'drill',
    database: 'postgres',
    port: 0,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  const running = await pg.start();
  const url = new URL(running.url);
  url.pathname = '/drill';
  const admin = openDatabase(running.url, { max: 1 });
  await admin.unsafe('create database drill template template0').finally(() => admin.end());
  return { url: url.toString(), stop: () => pg.stop() };
}

/** Checks that only a restored copy can answer: objects the database refers to, and prompt history. */
async function verifyRestoredCopy(
  databaseUrl: string,
  objectsDir: string,
  promptsDir: string,
  expectedPromptFiles: number | undefined,
): Promise<DrillCheck[]> {
  const sql = openDatabase(databaseUrl, { max: 1 });
  const checks: DrillCheck[] = [];
  try {
    const rows = await liveObjects(sql);
    const broken: string[] = [];
    for (const row of rows) {
      const file = path.join(objectsDir, row.key);
      if (!existsSync(file) || (await sha256File(file)) !== row.sha256) broken.push(row.key);
    }
    checks.push({
      name: 'objects',
      ok: broken.length === 0,
      detail: broken.length
        ? `${broken.length} of ${rows.length} objects missing or wrong: ${broken.slice(0, 5).join(', ')}`
        : `all ${rows.length} objects the database refers to are present and hash right`,
    });
    const { prompts, gaps } = await historyGaps(sql);
    checks.push({
      name: 'prompt-history',
      ok: gaps.length === 0,
      detail: gaps.length
        ? `history has gaps for ${gaps.join(', ')}`
        : `${prompts} prompts, every version from 1 to the newest present`,
    });
    checks.push(promptFilesCheck(promptsDir, expectedPromptFiles));
  } finally {
    await sql.end({ timeout: 5 });
  }
  return checks;
}

/**
 * The verdict on a snapshot that could not even be read as one (forged, damaged, unverified): a failed drill,
 * recorded and printed like any other, never a quiet skip.
 */
export function refusedDrill(ref: string, error: Error): DrillReport {
  const check = { name: 'snapshot', ok: false, detail: error.message };
  return {
    status: 'failed',
    snapshot: { id: ref, time: '' },
    recoverySeconds: 0,
    checks: [check],
    reason: `${check.name}: ${check.detail}`,
  };
}

/** Every secret the snapshot holds comes back (the admin token clients use after a disaster). */
function secretsCheck(snapshot: Snapshot, restored: Record<string, unknown> | undefined): DrillCheck {
  const expected = (snapshot.facts as { secrets?: { files?: number } } | undefined)?.secrets?.files;
  const files = Number(restored?.files ?? 0);
  return {
    name: 'secrets',
    ok: expected !== undefined && files === expected,
    detail: `${files} secret file(s) restored of the ${expected ?? '?'} the snapshot holds`,
  };
}

/** Every prompt file the snapshot counted is back (a backup stores only what its restore accepts). */
function promptFilesCheck(promptsDir: string, expected: number | undefined): DrillCheck {
  const files = existsSync(promptsDir)
    ? readdirSync(promptsDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length
    : 0;
  return {
    name: 'prompt-files',
    ok: expected !== undefined && files === expected,
    detail:
      expected === undefined
        ? 'the snapshot does not say how many prompt files it holds'
        : `${files} prompt file(s) restored of the ${expected} the snapshot holds`,
  };
}

/**
 * A restore drill: the snapshot is restored into a scratch PostgreSQL, a scratch Redis and a scratch folder,
 * then verified — row counts and table digests against the snapshot, every object the restored database
 * refers to present with the right SHA-256, prompt history without gaps, Redis key counts, every heap and
 * B-tree index consistent (`pg_amcheck --heapallindexed`) — and the time it took is the measured recovery time. Everything scratch is removed afterwards, pass or fail.
 */
export async function runDrill(config: Config, repo: Repository, snapshot: Snapshot): Promise<DrillReport> {
  const dir = path.join(config.dataDir, 'tmp', `drill-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const checks: DrillCheck[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  let started = performance.now();
  try {
    const database = await scratchDatabase(config, path.join(dir, 'pg'));
    cleanups.push(database.stop);
    const redis = await startScratchRedis({ dir: path.join(dir, 'redis') });
    cleanups.push(redis.stop);
    const objectsDir = path.join(dir, 'objects');
    const promptsDir = path.join(dir, 'prompts');
    started = performance.now();
    const report = await runRestore(repo, snapshot, {
      parts: [
        'postgres',
        'redis',
        'prompts',
        'objects',
        ...(snapshot.trees.secrets ? ['secrets' as const] : []),
      ],
      databaseUrl: database.url,
      redisUrl: redis.url,
      promptsDir,
      secretsDir: path.join(dir, 'secrets'),
      objects: new FileBlobStore(objectsDir),
      inPlace: false,
      scratchDir: path.join(dir, 'restore'),
    });
    const postgres = report.parts.postgres as { tables?: number; verified?: boolean } | undefined;
    checks.push({
      name: 'postgres',
      ok: postgres?.verified === true && (postgres.tables ?? 0) > 0,
      detail: postgres?.verified
        ? `${postgres.tables} tables match the snapshot's row counts and digests`
        : 'unverified: the restore was not checked against row counts and digests',
    });
    const facts = (snapshot.facts as { redis?: RedisFacts } | undefined)?.redis;
    if (facts) {
      const verdict = await verifyRedis(redis.url, facts, report.parts.redis as never);
      checks.push({
        name: 'redis',
        ok: verdict.ok,
        detail: verdict.ok
          ? `${facts.keys} keys loaded`
          : `key counts differ: ${verdict.mismatches.map((m) => `db${m.db} ${m.actual}/${m.expected}`).join(', ')}`,
      });
    }
    const promptFacts = (snapshot.facts as { prompts?: { files?: number } } | undefined)?.prompts;
    checks.push(...(await verifyRestoredCopy(database.url, objectsDir, promptsDir, promptFacts?.files)));
    checks.push({ name: 'amcheck', ...(await amcheckDatabase(database.url)) });
    if (snapshot.trees.secrets) checks.push(secretsCheck(snapshot, report.parts.secrets));
  } catch (error) {
    checks.push({ name: 'restore', ok: false, detail: (error as Error).message });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  const recoverySeconds = Math.round((performance.now() - started) / 10) / 100;
  const failed = checks.filter((c) => !c.ok);
  return {
    status: failed.length ? 'failed' : 'passed',
    snapshot: { id: snapshot.id, time: snapshot.time },
    recoverySeconds,
    checks,
    ...(failed.length ? { reason: failed.map((c) => `${c.name}: ${c.detail}`).join('; ') } : {}),
  };
}
