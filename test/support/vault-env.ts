import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import type { S3Server } from './s3-server.ts';
import { tempDir } from './temp.ts';

export interface VaultEnv {
  dir: string;
  db: TestDatabase;
  redisUrl: string;
  objects: ObjectStore;
  objectsDir: string;
  promptsDir: string;
  /** What a `trendgen` command needs to back up and restore this service. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A service to back up: a fresh migrated database, a Redis of its own (the vault takes an RDB of it, so it
 * cannot be the shared one), a file object store, a prompts folder and a backup folder, all in one temp dir.
 */
export async function startVaultEnv(name: string, extra: Record<string, string> = {}): Promise<VaultEnv> {
  const temp = tempDir(name);
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  const db = await createTestDatabase();
  const running = await redis.start();
  const objectsDir = path.join(temp.dir, 'objects');
  const promptsDir = path.join(temp.dir, 'prompts');
  mkdirSync(promptsDir, { recursive: true });
  return {
    dir: temp.dir,
    db,
    redisUrl: running.url,
    objects: new ObjectStore(db.sql, new FileBlobStore(objectsDir), path.join(temp.dir, 'spool')),
    objectsDir,
    promptsDir,
    env: {
      DATABASE_URL: db.url,
      REDIS_URL: running.url,
      STORAGE_URL: `file://${objectsDir}`,
      PROMPTS_DIR: promptsDir,
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      LOG_LEVEL: 'error',
      ...extra,
    },
    close: async () => {
      await redis.stop();
      await db.drop();
      temp.remove();
    },
  };
}

/** The variables of an offsite target on the test S3 server. */
export function offsiteEnv(s3: S3Server, uri: string, password: string): Record<string, string> {
  return {
    BACKUP_S3_URI: uri,
    BACKUP_PASSWORD: password,
    S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
    AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
  };
}
