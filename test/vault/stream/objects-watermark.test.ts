import path from 'node:path';
import { Readable } from 'node:stream';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { migrate } from '../../../src/db/migrate.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { ObjectStore } from '../../../src/objects/store.ts';
import { readObjectsStreamState } from '../../../src/vault/repository/index.ts';
import {
  objectStreamStatus,
  readObjectsWatermark,
  streamedObjects,
} from '../../../src/vault/stream/objects-status.ts';
import { runObjectStream } from '../../../src/vault/stream/objects-stream.ts';
import { fakePng } from '../../support/api.ts';
import { tempDir } from '../../support/temp.ts';
import { until, waitForRepository } from './support.ts';

describe("the objects' watermark", () => {
  const temp = tempDir('watermark');
  const server = new EmbeddedPostgres({
    root: path.join(temp.dir, 'pg'),
    user: 'trends',
    database: 'postgres',
    port: 0,
    // A synchronous standby that never comes: a session that asks for it waits in its commit, already dated
    // in the WAL but not yet visible — the moment a watermark read from a snapshot alone gets wrong.
    settings: {
      synchronous_standby_names: 'nobody',
      synchronous_commit: 'local',
      track_commit_timestamp: 'on',
    },
  });
  const pools: Sql[] = [];
  afterAll(async () => {
    for (const pool of pools) await pool.end({ timeout: 5 });
    await server.stop();
    temp.remove();
  });

  it('I11: never claims an object whose row is committed but not stored, even one still committing', async () => {
    const running = await server.start();
    const sql = openDatabase(running.url, { max: 4 });
    pools.push(sql);
    await migrate(sql);
    const config = loadConfig(
      {
        DATABASE_URL: running.url,
        DATA_DIR: path.join(temp.dir, 'data'),
        STORAGE_URL: `file://${path.join(temp.dir, 'objects')}`,
        BACKUP_DIR: path.join(temp.dir, 'backups'),
      },
      { dotEnv: false },
    );
    const blobs = new FileBlobStore(path.join(temp.dir, 'objects'));
    const objects = new ObjectStore(sql, blobs, path.join(temp.dir, 'spool'));
    const first = await objects.put(Readable.from([fakePng(4000)]), { kind: 'photo', maxBytes: 1e9 });

    // The streamer runs: it stores the first object and keeps its watermark in the repository.
    const stop = new AbortController();
    const streaming = runObjectStream({ config, sql, objects: blobs, signal: stop.signal });
    const repo = await waitForRepository(config, 'local');
    await until(
      'the first object streamed',
      async () => (await streamedObjects(repo)).has(first.key),
      20_000,
    );

    // An upload whose commit waits for the standby: its row is committed in the WAL, invisible to others.
    const waiting = postgres(running.url, {
      max: 1,
      onnotice: () => {},
      connection: { synchronous_commit: 'on' },
    });
    pools.push(waiting as unknown as Sql);
    const slowStore = new ObjectStore(waiting as unknown as Sql, blobs, path.join(temp.dir, 'spool2'));
    const slow = slowStore.put(Readable.from([fakePng(5000)]), { kind: 'photo', maxBytes: 1e9 });
    let pid = 0;
    await until(
      'the upload to wait in its commit',
      async () => {
        const rows = await sql`select pid from pg_stat_activity where wait_event = 'SyncRep'`;
        pid = (rows[0]?.pid as number) ?? 0;
        return pid !== 0;
      },
      20_000,
    );
    const waitingSince = Date.now();
    // The state record is rewritten every second: at least once while the commit hangs.
    await until(
      'a state record written while the commit hangs',
      async () => Date.parse((await readObjectsStreamState(repo))?.time ?? '0') > waitingSince + 200,
      20_000,
    );
    const status = await objectStreamStatus(sql, config);
    stop.abort();
    await streaming;
    const recorded = (await readObjectsWatermark(repo))!;

    // The standby wait is cancelled: the commit, dated before it became visible, now shows.
    await sql`select pg_cancel_backend(${pid})`;
    const slowRecord = await slow;
    const rows = await sql`select key, pg_xact_commit_timestamp(xmin) as committed from objects`;
    const streamed = await streamedObjects(repo);
    expect(streamed.has(first.key)).toBe(true);
    expect(streamed.has(slowRecord.key)).toBe(false);
    for (const watermark of [recorded, status[0]!.recoverableUntil!]) {
      const claimed = rows.filter((row) => (row.committed as Date).getTime() <= watermark.getTime());
      const lies = claimed.filter((row) => !streamed.has(row.key as string)).map((row) => row.key);
      expect(lies, `watermark ${watermark.toISOString()} claims objects it does not hold`).toEqual([]);
    }
  }, 120_000);
});
