import type { BlobStore } from '../../blobstore/blobstore.ts';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import type { ObjectStoreOptions } from '../../objects/store.ts';
import { markObjectsStreamed, pendingObjectsByKey } from '../../objects/stream-queue.ts';
import type { Repository } from '../repository/index.ts';
import { localTarget, targetNames } from '../targets.ts';
import { openStreamRepository, storeObjectsBatch } from './objects-store.ts';

/** With BACKUP_SYNC on, an upload could not be put in the local backup target before its answer. */
export class BackupSyncError extends Error {
  override name = 'BackupSyncError';
}

/**
 * The hook an upload runs after its row commits when BACKUP_SYNC is on (ObjectStore's `onRecorded`): the
 * object goes into the local target's repository, with its journal record, before the 2xx (I11). It is the
 * streamer's own code for one object, run in the process that answers; the queue entry is marked only after
 * the journal is written, so a failure loses nothing: the streamer retries it, and the client gets a 503.
 */
export function localObjectSync(
  config: Config,
  sql: Sql,
  objects: BlobStore,
): (record: { key: string }) => Promise<void> {
  const target = localTarget(config);
  let opening: Promise<Repository> | undefined;
  return async ({ key }) => {
    try {
      const ids = await pendingObjectsByKey(sql, target.name, [key]);
      if (ids.length === 0) return;
      opening ??= openStreamRepository(config, target);
      const repo = await opening;
      const { failed } = await storeObjectsBatch(repo, objects, [key], async () => undefined);
      if (failed[0]) throw failed[0].error;
      await markObjectsStreamed(sql, target.name, ids, targetNames(config));
    } catch (error) {
      opening = undefined;
      throw new BackupSyncError(
        `The upload was not acknowledged because BACKUP_SYNC is on and the local backup target ${config.backup.dir} could not be written (${(error as Error).message.replace(/\.$/, '')}); retry once it is writable.`,
        { cause: error },
      );
    }
  };
}

/** ObjectStore's options for this configuration: the sync hook when BACKUP_SYNC is on (api, worker, tests). */
export function objectStoreSyncOptions(config: Config, sql: Sql, objects: BlobStore): ObjectStoreOptions {
  return config.backup.sync ? { onRecorded: localObjectSync(config, sql, objects) } : {};
}
