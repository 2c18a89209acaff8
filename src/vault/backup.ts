import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BlobStore } from '../blobstore/blobstore.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { holdOpen } from '../lib/leftovers.ts';
import type { TargetOutcome } from './catalog.ts';
import { authenticateRepository, syncLedger } from './ledger.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import { repairObject } from './scrub.ts';
import { objectsSource } from './sources/objects.ts';
import { postgresSource } from './sources/postgres.ts';
import { promptsSource } from './sources/prompts.ts';
import { redisSource } from './sources/redis.ts';
import { secretsSource } from './sources/secrets.ts';
import { sideBySide } from './sources/side-by-side.ts';
import type {
  BackupContext,
  PostgresFacts,
  RedisFacts,
  SnapshotSource,
  SourceBackup,
} from './sources/types.ts';
import { loadSnapshots, openRepository, resolveTargets, type Target } from './targets.ts';

export const TRENDGEN_VERSION = '0.1.0';

export interface BackupInput {
  config: Config;
  databaseUrl: string;
  redisUrl: string;
  /** The object store the database's object keys live in. */
  objects: BlobStore;
  /** The service database, for the deletion ledger. */
  sql: Sql;
  tags?: string[];
  targets?: string[];
  /** The snapshot's time; the scheduler passes its slot so that simulated time works. */
  time?: Date;
  onProgress?: (
    phase: string,
    detail?: string,
    counts?: { done?: number; total?: number; bytes?: number },
  ) => void;
}

export interface BackupResult {
  snapshotId: string | undefined;
  time: string;
  targets: TargetOutcome[];
  facts:
    | {
        postgres: PostgresFacts;
        redis: RedisFacts;
        prompts: { files: number };
        objects: { count: number };
        secrets: { files: number };
      }
    | undefined;
  stats: Record<string, unknown>;
  durationMs: number;
  bytesAdded: number;
  /** Entries left out because a restore would refuse them (a symlink leading outside, a socket), by source. */
  skipped: Array<{ source: string; path: string; reason: string }>;
}

export class BackupError extends Error {
  override name = 'BackupError';
}

/** The newest snapshot of this host: its trees let unchanged files and objects be skipped. */
function parentOf(snapshots: Snapshot[]): Snapshot | undefined {
  return snapshots.find((s) => s.host === os.hostname()) ?? snapshots[0];
}

/** The first target whose repository opens (created when missing); the ones that fail are noted in `outcomes`. */
async function openPrimary(
  targets: Target[],
  config: Config,
  outcomes: TargetOutcome[],
): Promise<{ target: Target; repo: Repository }> {
  for (const target of targets) {
    try {
      return { target, repo: await openRepository(target, config, { create: true }) };
    } catch (error) {
      outcomes.push({ name: target.name, ok: false, error: (error as Error).message });
    }
  }
  throw new BackupError(
    `No backup target could be opened: ${outcomes.map((o) => `${o.name}: ${o.error}`).join(' ')}`,
  );
}

/**
 * A snapshot's parts, in the order the snapshot lists them. The database is dumped first: its snapshot fixes
 * which objects the backup must hold (I2, I8), so the objects are read once that snapshot has named them (while
 * pg_dump still runs); Redis, the prompts and the secrets are read meanwhile.
 */
function snapshotSources(input: BackupInput) {
  const { config } = input;
  const postgres = postgresSource(input.databaseUrl);
  // A damaged object is repaired from an older snapshot when one holds it, else left out (I7).
  const objects = objectsSource(input.objects, {
    liveKeys: () => postgres.liveObjectKeys,
    onDamaged: (key, sha256, repo) =>
      repairObject({ config, sql: input.sql, objects: input.objects }, key, sha256, 'backup', repo),
  });
  const all = [
    postgres,
    redisSource(input.redisUrl),
    promptsSource(config.promptsDir),
    objects,
    secretsSource(path.join(config.dataDir, 'secrets')),
  ] as SnapshotSource<unknown>[];
  return { postgres, objects, all };
}

/** Every source's backup, side by side as above; all settle before a failure is reported. */
async function backupSources(
  input: BackupInput,
  ctx: BackupContext,
): Promise<Record<string, SourceBackup<unknown>>> {
  const { postgres, objects, all } = snapshotSources(input);
  return await sideBySide(all, (source) =>
    source === objects ? postgres.liveObjectKeysRead().then(() => source.backup(ctx)) : source.backup(ctx),
  );
}

/**
 * One snapshot of PostgreSQL, Redis, prompts and objects (I8), written to the first target that works and
 * then copied to every other target. Order (I2, I6, I8): the object keys are read in the database dump's own
 * snapshot, so every object the dump refers to is in the backup; blobs are stored before trees, trees before the
 * snapshot record, which is written last and atomically, once every source has finished.
 */
export async function runBackup(input: BackupInput): Promise<BackupResult> {
  const started = Date.now();
  const { config } = input;
  const progress = input.onProgress ?? (() => {});
  const targets = resolveTargets(config, input.targets);
  const outcomes: TargetOutcome[] = [];
  const primary = await openPrimary(targets, config, outcomes);
  const { repo } = primary;
  await authenticateRepository(repo, input.sql);
  const scratch = path.join(config.dataDir, 'tmp', `backup-${randomBytes(6).toString('hex')}`);
  mkdirSync(scratch, { recursive: true });
  const release = holdOpen(scratch);
  const lock = await repo.lock({ exclusive: false });
  // Many blobs per file (format 3): the snapshot record is written once they are durable and indexed.
  repo.packBlobs();
  const time = (input.time ?? new Date()).toISOString();
  try {
    const parent = parentOf(await loadSnapshots(repo));
    const ctx: BackupContext = { repo, scratch, parent, progress };
    const stored = await backupSources(input, ctx);
    lock.assertHeld();
    const stats = Object.fromEntries(Object.entries(stored).map(([name, part]) => [name, part.stats]));
    const facts = Object.fromEntries(
      Object.entries(stored).map(([name, part]) => [name, part.facts]),
    ) as NonNullable<BackupResult['facts']>;
    const bytesAdded = Object.values(stored).reduce((sum, part) => sum + part.stats.bytesAdded, 0);
    const snapshotId = await repo.saveSnapshot({
      time,
      host: os.hostname(),
      tags: input.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      trees: Object.fromEntries(Object.entries(stored).map(([name, part]) => [name, part.tree])),
      facts,
      stats,
      trendgen: { version: TRENDGEN_VERSION },
    });
    await syncLedger(repo, input.sql, primary.target.name);
    outcomes.push({
      name: primary.target.name,
      ok: true,
      bytesAdded,
      blobsAdded: countAdded(stats),
      ...(await sizeOf(repo)),
    });
    await lock.release();
    // Side by side: a slow or unreachable region holds back no other target's copy.
    const others = targets.filter((t) => t !== primary!.target && !outcomes.some((o) => o.name === t.name));
    for (const target of others) progress('copy', target.name);
    outcomes.push(...(await Promise.all(others.map((t) => copyToTarget(t, config, repo, input.sql)))));
    // Targets that failed to open at the start get their copy now if they came back meanwhile.
    const failedAtStart = outcomes.filter((o) => !o.ok && !others.some((t) => t.name === o.name));
    await Promise.all(
      failedAtStart.map(async (outcome) => {
        const target = targets.find((t) => t.name === outcome.name)!;
        const retry = await copyToTarget(target, config, repo, input.sql);
        if (retry.ok) Object.assign(outcome, retry);
      }),
    );
    return {
      snapshotId,
      time,
      targets: outcomes.sort(
        (a, b) => targets.findIndex((t) => t.name === a.name) - targets.findIndex((t) => t.name === b.name),
      ),
      facts,
      stats,
      durationMs: Date.now() - started,
      bytesAdded,
      skipped: skippedEntries(stats),
    };
  } finally {
    await lock.release().catch(() => {});
    release();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Snapshot count and blob bytes, from the listing the repository already holds (no extra requests per blob). */
async function sizeOf(repo: Repository): Promise<{ snapshots: number; repositoryBytes: number }> {
  let repositoryBytes = 0;
  for (const size of (await repo.index.load()).values()) repositoryBytes += size;
  return { snapshots: (await repo.listSnapshots()).length, repositoryBytes };
}

function skippedEntries(stats: Record<string, Record<string, unknown>>): BackupResult['skipped'] {
  return Object.entries(stats).flatMap(([source, s]) =>
    ((s.skippedEntries ?? []) as Array<{ path: string; reason: string }>).map((e) => ({ source, ...e })),
  );
}

function countAdded(stats: Record<string, { blobsAdded: number }>): number {
  return Object.values(stats).reduce((sum, s) => sum + s.blobsAdded, 0);
}

/**
 * Brings a secondary target up to date with every snapshot the primary holds, so a target that was down
 * catches up with the snapshots it missed.
 */
export async function copyToTarget(
  target: Target,
  config: Config,
  from: Repository,
  sql?: Sql,
): Promise<TargetOutcome> {
  try {
    const repo = await openRepository(target, config, { create: true, like: from });
    await authenticateRepository(repo, sql);
    const lock = await repo.lock({ exclusive: false });
    try {
      const copied = await from.copySnapshotsTo(repo, await from.listSnapshots());
      // The ledger came with the copy: recorded, so the target owes no deletion it holds.
      if (sql) await syncLedger(repo, sql, target.name);
      lock.assertHeld();
      return {
        name: target.name,
        ok: true,
        blobsAdded: copied.blobsCopied,
        bytesAdded: copied.bytesCopied,
        ...(await sizeOf(repo)),
      };
    } finally {
      await lock.release();
    }
  } catch (error) {
    return { name: target.name, ok: false, error: (error as Error).message };
  }
}
