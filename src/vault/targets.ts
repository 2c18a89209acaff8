import type { BlobStore } from '../blobstore/blobstore.ts';
import { createBlobStore } from '../blobstore/index.ts';
import type { Config, S3Settings } from '../config/config.ts';
import {
  InvalidSnapshotError,
  Repository,
  RepositoryExistsError,
  RepositoryNotFoundError,
  type Snapshot,
  SnapshotNotFoundError,
} from './repository/index.ts';
import { repositoryAccess } from './repository-key.ts';

export interface Target {
  /** `local` (BACKUP_DIR), `s3` (BACKUP_S3_URI) or a name of BACKUP_OFFSITE_TARGETS. */
  name: string;
  offsite: boolean;
  store: BlobStore;
}

export class TargetError extends Error {
  override name = 'TargetError';
}

export interface TargetDescription {
  name: string;
  offsite: boolean;
  /** Where it is, without credentials. */
  url: string;
  /** The S3 settings it is reached with: the object store's, or its own (BACKUP_OFFSITE_TARGETS). */
  s3: S3Settings;
  /** The variable that configures it, for sentences about it. */
  setting: string;
}

/**
 * The configured targets, local first (3-2-1: a copy on this machine and others somewhere else), then
 * BACKUP_S3_URI's and BACKUP_OFFSITE_TARGETS' in their order. Never throws, so that a configuration
 * `resolveTargets` refuses can still be reported on.
 */
export function describeTargets(config: Config): TargetDescription[] {
  const { dir, s3Uri, offsiteTargets } = config.backup;
  return [
    { name: 'local', offsite: false, url: `file://${dir}`, s3: config.s3, setting: 'BACKUP_DIR' },
    ...(s3Uri ? [{ name: 's3', offsite: true, url: s3Uri, s3: config.s3, setting: 'BACKUP_S3_URI' }] : []),
    ...offsiteTargets.map((target) => ({
      name: target.name,
      offsite: true,
      url: target.url,
      s3: target.s3,
      setting: 'BACKUP_OFFSITE_TARGETS',
    })),
  ];
}

/** The store of a described target, reached with its own S3 settings. */
export function targetStore(target: TargetDescription): BlobStore {
  return createBlobStore(target.url, target.s3, { setting: target.setting });
}

export function targetNames(config: Config): string[] {
  return describeTargets(config).map((target) => target.name);
}

/** The offsite targets' names; throws when there is none (a check that wants a copy elsewhere). */
export function offsiteTargetNames(config: Config): string[] {
  const names = describeTargets(config)
    .filter((target) => target.offsite)
    .map((target) => target.name);
  if (names.length === 0) {
    throw new TargetError(
      'No offsite target is configured: set BACKUP_S3_URI or BACKUP_OFFSITE_TARGETS (and BACKUP_PASSWORD).',
    );
  }
  return names;
}

/** BACKUP_DIR's target; never throws, since the local ledger must be writable whatever the offsite settings. */
export function localTarget(config: Config): Target {
  const [local] = describeTargets(config);
  return { name: local!.name, offsite: false, store: targetStore(local!) };
}

/** The backup targets ready to use, local first; `only` picks some by name. */
export function resolveTargets(config: Config, only?: string[]): Target[] {
  const described = describeTargets(config);
  const offsite = described.find((target) => target.offsite);
  if (offsite && !config.backup.password && !config.backup.allowUnencryptedOffsite) {
    throw new TargetError(
      `${offsite.setting} is set but BACKUP_PASSWORD is not: offsite backups are encrypted; set BACKUP_PASSWORD, or BACKUP_ALLOW_UNENCRYPTED_OFFSITE=true to accept plaintext copies.`,
    );
  }
  const targets = described.map((target) => ({
    name: target.name,
    offsite: target.offsite,
    store: targetStore(target),
  }));
  if (!only || only.length === 0) return targets;
  const unknown = only.filter((name) => !targets.some((target) => target.name === name));
  if (unknown.length) {
    throw new TargetError(
      `Unknown backup target ${unknown.join(', ')}: configured targets are ${targets.map((t) => t.name).join(', ')}.`,
    );
  }
  return targets.filter((target) => only.includes(target.name));
}

/**
 * Opens the repository on a target with BACKUP_PASSWORD or the authentication key (repository-key.ts); with
 * `create` (a writer), makes the key when there is none and initialises a missing repository (sharing
 * `like`'s keys, so blob ids agree).
 */
export async function openRepository(
  target: Target,
  config: Config,
  options: { create?: boolean; like?: Repository } = {},
): Promise<Repository> {
  const { password, authKey } = repositoryAccess(config, { create: options.create });
  const access = { ...(password ? { password } : {}), ...(authKey ? { authKey } : {}) };
  try {
    return await Repository.open(target.store, access);
  } catch (error) {
    if (!(error instanceof RepositoryNotFoundError) || !options.create) throw error;
  }
  try {
    return await Repository.init(target.store, {
      ...access,
      ...(options.like ? { like: options.like } : {}),
    });
  } catch (error) {
    // Another process (protect's WAL shipper and object streamer start together) created it first: its
    // repository is the one to use.
    if (!(error instanceof RepositoryExistsError)) throw error;
    return await Repository.open(target.store, access).catch(() => {
      throw error;
    });
  }
}

/** A snapshot record on a target that does not load. */
export interface DamagedRecord {
  id: string;
  /** When the file was last written, as the target lists it; its own time cannot be read. */
  modified: string | undefined;
  reason: string;
}

/** Newest first, plus the records that did not load. */
export async function readSnapshots(
  repo: Repository,
): Promise<{ snapshots: Snapshot[]; damaged: DamagedRecord[] }> {
  const snapshots: Snapshot[] = [];
  const damaged: DamagedRecord[] = [];
  for (const { id, modified } of await repo.listSnapshotFiles()) {
    try {
      snapshots.push(await repo.loadSnapshot(id));
    } catch (error) {
      // Deleted between the listing and the read (forget on another host): not a damaged record.
      if (error instanceof SnapshotNotFoundError) continue;
      const reason = error instanceof InvalidSnapshotError ? error.reason : (error as Error).message;
      damaged.push({ id, modified: modified?.toISOString(), reason });
    }
  }
  snapshots.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  return { snapshots, damaged };
}

/** Newest first. Snapshots that fail to load are left out here; readSnapshots and `check` report them. */
export async function loadSnapshots(repo: Repository): Promise<Snapshot[]> {
  return (await readSnapshots(repo)).snapshots;
}

/** The first target whose repository opens: restore, drill, export and snapshots read from one. */
export async function openFirstTarget(
  config: Config,
  only?: string[],
): Promise<{ target: Target; repo: Repository }> {
  const problems: string[] = [];
  for (const target of resolveTargets(config, only)) {
    try {
      return { target, repo: await openRepository(target, config) };
    } catch (error) {
      problems.push(`${target.name}: ${(error as Error).message}`);
    }
  }
  throw new TargetError(`No backup target could be opened. ${problems.join(' ')}`);
}

export interface SnapshotListing {
  id: string;
  /** `damaged`: the record does not load (its reason in `problem`); `time` is then when its file was written. */
  status: 'ok' | 'damaged';
  problem?: string;
  time: string;
  tags: string[];
  /** The targets that hold it. */
  targets: string[];
  facts: Snapshot['facts'];
  stats: Snapshot['stats'];
}

/** Every snapshot on every target (newest first), with the targets that hold it and those that could not be read. */
export async function snapshotsOnTargets(
  config: Config,
  only?: string[],
): Promise<{ snapshots: SnapshotListing[]; unreachable: Array<{ target: string; error: string }> }> {
  const rows = new Map<string, SnapshotListing>();
  const unreachable: Array<{ target: string; error: string }> = [];
  for (const target of resolveTargets(config, only)) {
    try {
      const repo = await openRepository(target, config);
      const { snapshots, damaged } = await readSnapshots(repo);
      for (const record of damaged) {
        // A copy that loads on another target wins; the damage here is still named by check.
        if (rows.get(record.id)?.status === 'ok') continue;
        const row = rows.get(record.id) ?? {
          id: record.id,
          status: 'damaged' as const,
          problem: record.reason,
          time: record.modified ?? new Date(0).toISOString(),
          tags: [],
          targets: [],
          facts: undefined,
          stats: undefined,
        };
        row.targets.push(target.name);
        rows.set(record.id, row);
      }
      for (const snapshot of snapshots) {
        const existing = rows.get(snapshot.id);
        if (existing?.status === 'damaged') rows.delete(snapshot.id);
        const row = (existing?.status === 'ok' ? existing : undefined) ?? {
          id: snapshot.id,
          status: 'ok' as const,
          time: snapshot.time,
          tags: snapshot.tags,
          targets: [],
          facts: snapshot.facts,
          stats: snapshot.stats,
        };
        row.targets.push(target.name);
        rows.set(snapshot.id, row);
      }
    } catch (error) {
      unreachable.push({ target: target.name, error: (error as Error).message });
    }
  }
  const snapshots = [...rows.values()].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  return { snapshots, unreachable };
}
