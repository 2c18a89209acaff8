import { spawn } from 'node:child_process';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { type BlobStore, createBlobStore } from '../../src/blobstore/index.ts';
import { loadConfig } from '../../src/config/config.ts';
import { purgeTotals } from '../../src/objects/purge.ts';
import { ObjectStore, tombstoneObjects } from '../../src/objects/store.ts';
import { fakePng } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';

const CHILD = path.resolve(import.meta.dirname, 'fixtures/collect-then-hang.ts');
const COUNT = 12;

/** Runs the collector in a real process until it has deleted its `stopAt`th blob, then SIGKILLs it there. */
async function crashAfterDelete(env: Record<string, string>, stopAt: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, String(stopAt)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, s) => resolve(s)));
  const key = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      const match = /DELETED (\S+)\n/.exec(out);
      if (match) resolve(match[1]!);
      else if (out.includes('FINISHED')) reject(new Error('the collector finished without stopping'));
    });
    child.once('exit', () => reject(new Error(`the collector exited first: ${err}`)));
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return key;
}

describe.each(['file', 's3'] as const)('the collector killed mid-way (%s store)', (kind) => {
  let db: TestDatabase | undefined;
  let s3: S3Server | undefined;
  const temp = tempDir(`gc-crash-${kind}`);
  afterAll(async () => {
    await db?.drop();
    await s3?.stop();
    temp.remove();
  });

  it('I3: a SIGKILL between deleting a blob and recording it is rerun cleanly, each object counted once', async () => {
    db = await createTestDatabase();
    let env: Record<string, string> = {
      DATABASE_URL: db.url,
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      BACKUP_PITR_WINDOW: '1s',
      LOG_LEVEL: 'error',
    };
    let blobs: BlobStore;
    if (kind === 's3') {
      s3 = await startS3Server({ buckets: ['objects'] });
      env = {
        ...env,
        STORAGE_URL: 's3://objects/gc',
        S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: s3.settings.accessKeyId!,
        AWS_SECRET_ACCESS_KEY: s3.settings.secretAccessKey!,
      };
      blobs = createBlobStore(env.STORAGE_URL!, loadConfig(env, { dotEnv: false }).s3);
    } else {
      env.STORAGE_URL = `file://${path.join(temp.dir, 'objects')}`;
      blobs = new FileBlobStore(path.join(temp.dir, 'objects'));
    }
    const store = new ObjectStore(db.sql, blobs, path.join(temp.dir, 'spool'));
    const keys: string[] = [];
    let bytes = 0;
    for (let i = 0; i < COUNT; i++) {
      const record = await store.put(Readable.from([fakePng(2000 + i)]), { kind: 'output', maxBytes: 1e9 });
      keys.push(record.key);
      bytes += record.size;
    }
    await tombstoneObjects(db.sql, keys);
    await db.sql`update objects set deleted_at = now() - interval '1 day'`;

    // Killed twice at the worst moment: the blob is gone, its removal not recorded.
    for (const stopAt of [1, 4]) {
      const key = await crashAfterDelete(env, stopAt);
      expect(await blobs.head(key)).toBeUndefined();
      const [row] = await db.sql`select purged_at from objects where key = ${key}`;
      expect(row!.purged_at).toBeNull();
    }

    const rerun = await runCli(['gc', '--json'], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    for (const key of keys) expect(await blobs.head(key), key).toBeUndefined();
    const [left] = await db.sql`select count(*)::int as n from objects where purged_at is null`;
    expect(left!.n).toBe(0);
    expect(await purgeTotals(db.sql)).toContainEqual({ reason: 'tombstoned', items: COUNT, bytes });
    await blobs.close?.();
  }, 180_000);
});
