import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { BlobNotFoundError, type BlobStore } from '../blobstore/blobstore.ts';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { sleepUnlessAborted } from '../lib/process.ts';
import { recordObjectDamage, recordObjectRepair } from '../objects/integrity.ts';
import { liveObjects } from '../objects/queries.ts';
import type { Repository, TreeEntry } from './repository/index.ts';
import { loadSnapshots, openRepository, resolveTargets } from './targets.ts';

/**
 * The scrub: every live object in the store re-hashed at OBJECT_SCRUB_RATE, pass after pass, so that bit rot is
 * found while a backup still holds the true bytes; damage is recorded (alerts, doctor, /readyz, metrics) and
 * repaired from the newest snapshot that holds the object.
 */

export interface ScrubDeps {
  config: Config;
  sql: Sql;
  objects: BlobStore;
  /** Silent when not given (a backup run reports through its result). */
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
}

export interface ScrubReport {
  objects: number;
  bytes: number;
  /** Keys whose stored bytes did not hash to their name (or were missing), and which of them were repaired. */
  damaged: string[];
  repaired: string[];
  ms: number;
}

/** Spends bytes at a steady rate: sleeps whenever the reading runs ahead of it. */
class Pace {
  private readonly started = Date.now();
  private spent = 0;
  constructor(private readonly bytesPerSecond: number) {}
  async spend(bytes: number, signal?: AbortSignal): Promise<void> {
    this.spent += bytes;
    const due = this.started + (this.spent / this.bytesPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 0 && !signal?.aborted) await sleepUnlessAborted(wait, signal);
  }
}

/** The stored copy's SHA-256, read at the pace; undefined when the copy is missing. */
async function hashStored(
  objects: BlobStore,
  key: string,
  pace: Pace,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of await objects.get(key)) {
      hash.update(chunk as Buffer);
      await pace.spend((chunk as Buffer).length, signal);
    }
  } catch (error) {
    if (error instanceof BlobNotFoundError) return undefined;
    throw error;
  }
  return hash.digest('hex');
}

async function entryAt(repo: Repository, treeId: string, parts: string[]): Promise<TreeEntry | undefined> {
  let tree = treeId;
  for (const [i, part] of parts.entries()) {
    const entry = (await repo.readTree(tree)).entries.find((e) => e.name === part);
    if (!entry) return undefined;
    if (i === parts.length - 1) return entry.type === 'file' ? entry : undefined;
    if (entry.type !== 'dir' || !entry.subtree) return undefined;
    tree = entry.subtree;
  }
  return undefined;
}

/**
 * The true bytes of `key` from the newest snapshot that holds a copy hashing to `sha256`, on the first target
 * that has one (`repo` first when given: the repository a backup is writing). Undefined when none does.
 */
export async function objectFromVault(
  config: Config,
  key: string,
  sha256: string,
  repo?: Repository,
): Promise<{ bytes: Buffer; where: string } | undefined> {
  const repos: Array<() => Promise<{ name: string; repo: Repository }>> = [];
  if (repo) repos.push(async () => ({ name: 'the repository being written', repo }));
  for (const target of resolveTargets(config)) {
    repos.push(async () => ({
      name: target.name,
      repo: await openRepository(target, config),
    }));
  }
  for (const open of repos) {
    try {
      const { name, repo: source } = await open();
      for (const snapshot of await loadSnapshots(source)) {
        const tree = snapshot.trees.objects;
        const entry = tree ? await entryAt(source, tree, key.split('/')).catch(() => undefined) : undefined;
        if (!entry?.chunks) continue;
        const bytes = Buffer.concat(await Promise.all(entry.chunks.map((id) => source.getBlob(id))));
        if (createHash('sha256').update(bytes).digest('hex') === sha256) {
          return { bytes, where: `snapshot ${snapshot.id.slice(0, 8)} on ${name}` };
        }
      }
    } catch {
      // A target that cannot be opened or read holds nothing usable here; the next one may.
    }
  }
  return undefined;
}

/** Puts the true bytes back from a backup when one holds them; records damage and repair either way. */
export async function repairObject(
  deps: ScrubDeps,
  key: string,
  sha256: string,
  foundBy: 'scrub' | 'backup',
  repo?: Repository,
): Promise<{ bytes: Buffer; where: string } | undefined> {
  await recordObjectDamage(deps.sql, key, foundBy);
  const found = await objectFromVault(deps.config, key, sha256, repo);
  if (!found) {
    deps.logger?.error({ key, foundBy }, 'object damaged and no backup holds its true bytes');
    return undefined;
  }
  await deps.objects.put(key, found.bytes, { size: found.bytes.length });
  await recordObjectRepair(deps.sql, key, 'vault');
  deps.logger?.warn({ key, foundBy, from: found.where }, 'damaged object repaired from a backup');
  return found;
}

/** One pass over every live object at `bytesPerSecond`. */
export async function scrubPass(
  deps: ScrubDeps,
  options: { bytesPerSecond: number; signal?: AbortSignal },
): Promise<ScrubReport> {
  const started = Date.now();
  const pace = new Pace(options.bytesPerSecond);
  const report: ScrubReport = { objects: 0, bytes: 0, damaged: [], repaired: [], ms: 0 };
  for (const object of await liveObjects(deps.sql)) {
    if (options.signal?.aborted) break;
    const actual = await hashStored(deps.objects, object.key, pace, options.signal);
    if (options.signal?.aborted) break;
    report.objects++;
    report.bytes += object.size;
    if (actual === object.sha256) continue;
    report.damaged.push(object.key);
    if (await repairObject(deps, object.key, object.sha256, 'scrub')) report.repaired.push(object.key);
  }
  report.ms = Date.now() - started;
  return report;
}

/** Scrub passes one after another until `signal` aborts, with `pauseMs` between them. */
export async function runScrub(
  deps: ScrubDeps,
  options: { bytesPerSecond: number; pauseMs: number; signal: AbortSignal },
): Promise<void> {
  while (!options.signal.aborted) {
    try {
      const report = await scrubPass(deps, options);
      if (report.damaged.length) deps.logger?.error({ ...report }, 'object scrub pass found damage');
      else deps.logger?.info({ ...report }, 'object scrub pass done');
    } catch (error) {
      deps.logger?.error({ err: error }, 'object scrub pass failed; the next pass tries again');
    }
    await sleepUnlessAborted(options.pauseMs, options.signal);
  }
}
