import type { BlobStore } from '../blobstore/blobstore.ts';
import { createBlobStore } from '../blobstore/index.ts';
import type { Config } from '../config/config.ts';
import { Repository, RepositoryNotFoundError } from './repository/index.ts';

export interface Target {
  /** `local` (BACKUP_DIR) or `s3` (BACKUP_S3_URI). */
  name: string;
  offsite: boolean;
  store: BlobStore;
}

export class TargetError extends Error {
  override name = 'TargetError';
}

/** The backup targets, local first: 3-2-1 means a copy on this machine and one somewhere else. */
export function resolveTargets(config: Config, only?: string[]): Target[] {
  const targets: Target[] = [
    { name: 'local', offsite: false, store: createBlobStore(`file://${config.backup.dir}`, config.s3) },
  ];
  if (config.backup.s3Uri) {
    if (!config.backup.password && !config.backup.allowUnencryptedOffsite) {
      throw new TargetError(
        'BACKUP_S3_URI is set but BACKUP_PASSWORD is not: offsite backups are encrypted; set BACKUP_PASSWORD, or BACKUP_ALLOW_UNENCRYPTED_OFFSITE=true to accept plaintext copies.',
      );
    }
    targets.push({ name: 's3', offsite: true, store: createBlobStore(config.backup.s3Uri, config.s3) });
  }
  if (!only || only.length === 0) return targets;
  const unknown = only.filter((name) => !targets.some((target) => target.name === name));
  if (unknown.length) {
    throw new TargetError(
      `Unknown backup target ${unknown.join(', ')}: configured targets are ${targets.map((t) => t.name).join(', ')}.`,
    );
  }
  return targets.filter((target) => only.includes(target.name));
}

/** Opens the repository on a target; with `create`, initialises it (sharing `like`'s keys, so blob ids agree). */
export async function openRepository(
  target: Target,
  password: string | undefined,
  options: { create?: boolean; like?: Repository } = {},
): Promise<Repository> {
  try {
    return await Repository.open(target.store, { password });
  } catch (error) {
    if (!(error instanceof RepositoryNotFoundError) || !options.create) throw error;
    return await Repository.init(target.store, { password, ...(options.like ? { like: options.like } : {}) });
  }
}

/** Newest first. Snapshots that fail to load are skipped here; `check` reports them. */
export async function loadSnapshots(repo: Repository) {
  const snapshots = [];
  for (const id of await repo.listSnapshots()) {
    try {
      snapshots.push(await repo.loadSnapshot(id));
    } catch {
      // Reported by check.
    }
  }
  return snapshots.sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
}
