import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { runAsFor } from '../../../src/embedded/run-as.ts';
import { sleep } from '../../../src/lib/process.ts';
import { type Repository, writeObjectsStreamState } from '../../../src/vault/repository/index.ts';
import { planMoment } from '../../../src/vault/restore-to-moment.ts';
import { openRepository, type Target } from '../../../src/vault/targets.ts';
import { takeBaseBackup } from '../../../src/vault/wal/base-backup.ts';
import { DEFAULT_SEGMENT_BYTES, parseLsn } from '../../../src/vault/wal/lsn.ts';
import { type PointInTimePlan, planPointInTime } from '../../../src/vault/wal/pitr-plan.ts';
import { restorePhysical } from '../../../src/vault/wal/pitr-restore.ts';
import { WalReceiver } from '../../../src/vault/wal/receiver.ts';
import { WalShipper } from '../../../src/vault/wal/shipper.ts';
import { treeFileBlobs } from '../../../src/vault/wal/tree-file.ts';
import { flipStoredByte, storedBlob } from '../../support/stored-blobs.ts';
import { tempDir } from '../../support/temp.ts';

// I11: the WAL streamed into the vault restores PostgreSQL to any moment, and to the newest one.
describe('I11 point-in-time restore from the streamed WAL', { timeout: 300_000 }, () => {
  const temp = tempDir('pitr');
  const pg = new EmbeddedPostgres({
    root: path.join(temp.dir, 'data'),
    user: 'trends',
    database: 'postgres',
    port: 0,
  });
  let url: string;
  let sql: Sql;
  let receiver: WalReceiver;
  let shipper: WalShipper;
  let repo: Repository;
  const walDir = path.join(temp.dir, 'backups', 'incoming', 'wal');

  beforeAll(async () => {
    const running = await pg.start();
    url = running.url;
    sql = openDatabase(url, { max: 2 });
    await sql`create table events (id serial primary key, at timestamptz not null default clock_timestamp(), note text)`;
    const store = new FileBlobStore(path.join(temp.dir, 'backups'));
    const target: Target = { name: 'local', offsite: false, store };
    receiver = new WalReceiver({ databaseUrl: url, walDir });
    receiver.start();
    const config = loadConfig(
      {
        DATA_DIR: path.join(temp.dir, 'data'),
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        BACKUP_KEY: randomBytes(32).toString('hex'),
      },
      { dotEnv: false },
    );
    repo = await openRepository(target, config, { create: true });
    shipper = new WalShipper({ walDir, targets: [target], config, sql });
  });

  afterAll(async () => {
    await receiver?.stop();
    await sql?.end({ timeout: 5 });
    await pg.stop();
    temp.remove();
  });

  async function shipUntil(check: () => boolean, what: string) {
    for (let i = 0; i < 200; i++) {
      await shipper.cycle();
      if (check()) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(shipper.progress())}`);
  }

  it('restores every commit before the moment and none after it, and the newest moment', async () => {
    await shipUntil(
      () => receiver.state === 'streaming' && shipper.progress()[0]!.shippedLsn !== undefined,
      'the stream',
    );
    const base = await takeBaseBackup(repo, url);
    expect(base.startLsn).toMatch(/\//);
    const before: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [row] = await sql<
        { id: number }[]
      >`insert into events (note) values (${`before ${i}`}) returning id`;
      before.push(row!.id);
    }
    await sql`select pg_switch_wal()`;
    await sleep(50);
    const moment = (await sql<{ t: Date }[]>`select clock_timestamp() as t`)[0]!.t;
    await sleep(50);
    for (let i = 0; i < 20; i++) await sql`insert into events (note) values (${`after ${i}`})`;
    const total = (await sql<{ n: number }[]>`select count(*)::int as n from events`)[0]!.n;
    // The newest write is acknowledged; the shipper must make it recoverable within a second or so.
    const acknowledgedAt = Date.now();
    await shipUntil(() => (shipper.progress()[0]!.lagSeconds ?? 99) === 0, 'the newest write to be shipped');
    const shippedAfterMs = Date.now() - acknowledgedAt;
    expect(shippedAfterMs).toBeLessThan(5000);

    const atMoment = await restoreInto('moment', moment);
    expect(atMoment.ids).toEqual(before);
    expect(atMoment.result.recoveredTo).toBeDefined();

    const newest = await restoreInto('newest', undefined);
    expect(newest.ids.length).toBe(total);

    // Base backups and WAL are roots: check walks them and prune would keep every blob they need.
    const report = await repo.check();
    expect(report.ok).toBe(true);
    const needed = await treeFileBlobs(repo, base.tree);
    expect(report.unreferencedBlobs).toBeDefined();
    expect(needed.filter((id) => report.unreferencedBlobs!.includes(id))).toEqual([]);
  });

  it('restores the moment a base backup ended, when it ended on a segment boundary and the next commit is later', async () => {
    await shipUntil(() => (shipper.progress()[0]!.lagSeconds ?? 99) === 0, 'the stream to be current');
    const kept = (await sql<{ id: number }[]>`select id from events order by id`).map((r) => r.id);
    // On an idle server the backup's closing WAL switch leaves the server's position on a segment boundary: the
    // segment recorded as covering the moment then ends exactly where the base backup does.
    const base = await takeBaseBackup(repo, url);
    expect(parseLsn(base.endLsn) % BigInt(DEFAULT_SEGMENT_BYTES)).toBe(0n);
    await shipUntil(
      () => (shipper.progress()[0]!.shippedLsn ?? 0n) >= parseLsn(base.endLsn),
      'the base backup end to be shipped',
    );
    await sleep(50);
    for (let i = 0; i < 5; i++) await sql`insert into events (note) values (${`after base ${i}`})`;
    await sql`select pg_switch_wal()`;
    await shipUntil(() => (shipper.progress()[0]!.lagSeconds ?? 99) === 0, 'the newest write to be shipped');

    const atEnd = await restoreInto('base-end', new Date(base.time));
    expect(atEnd.ids).toEqual(kept);
  });

  it("I8: restore latest stops at the objects' watermark even where the receiver's own WAL goes past it", async () => {
    await shipUntil(() => (shipper.progress()[0]!.lagSeconds ?? 99) === 0, 'the stream to be current');
    // Commits the receiver has on the backup disk but the shipper has not put into the vault yet.
    const held: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [row] = await sql<
        { id: number }[]
      >`insert into events (note) values (${`held ${i}`}) returning id`;
      held.push(row!.id);
    }
    await sleep(50);
    const watermark = (await sql<{ t: Date }[]>`select clock_timestamp() as t`)[0]!.t;
    await sleep(50);
    // Past the watermark: rows whose objects the vault would not hold.
    for (let i = 0; i < 5; i++) await sql`insert into events (note) values (${`not held ${i}`})`;
    await sleep(1000);
    await writeObjectsStreamState(repo, {
      version: 1,
      time: new Date().toISOString(),
      watermark: watermark.toISOString(),
    });
    const config = loadConfig({ BACKUP_DIR: path.join(temp.dir, 'backups') }, { dotEnv: false });
    const plan = await planMoment(config, repo, undefined);
    expect(plan.target?.toISOString()).toBe(watermark.toISOString());
    const receiverFiles = inodesIn(walDir);
    expect(receiverFiles.size).toBeGreaterThan(0);
    const restored = await restoreInto('watermark', plan, walDir);
    // The restored server may recycle its WAL files and write into them: none of them may be the receiver's.
    const shared = [...inodesIn(path.join(temp.dir, 'restored-watermark', 'pg_wal'))].filter((inode) =>
      receiverFiles.has(inode),
    );
    expect(shared).toEqual([]);
    const newestHeld = held.at(-1)!;
    expect(restored.ids.filter((id) => id > newestHeld)).toEqual([]);
    expect(restored.ids).toContain(newestHeld);
  });

  it('a damaged chunk of the base backup stops the restore with an error that names it', async () => {
    const plan = await planPointInTime(repo, undefined);
    const [, , middle] = await treeFileBlobs(repo, plan.base.tree);
    // The base backup's chunks are in a pack: the middle one's bytes are flipped where they lie.
    flipStoredByte(await storedBlob(repo, path.join(temp.dir, 'backups'), middle!));
    await expect(
      restorePhysical(repo, plan, {
        dataDir: path.join(temp.dir, 'restored-damaged'),
        scratch: path.join(temp.dir, 'scratch-damaged'),
        superuser: 'trends',
        runAs: runAsFor('postgres', temp.dir),
      }),
    ).rejects.toThrow(new RegExp(middle!.slice(0, 12)));
  });

  /** The files of a folder as device:inode, so a hard link between two folders shows. */
  function inodesIn(dir: string): Set<string> {
    const inodes = new Set<string>();
    for (const name of readdirSync(dir)) {
      const info = statSync(path.join(dir, name));
      if (info.isFile()) inodes.add(`${info.dev}:${info.ino}`);
    }
    return inodes;
  }

  async function restoreInto(
    name: string,
    target: Date | PointInTimePlan | undefined,
    receivedWalDir?: string,
  ) {
    const plan =
      target === undefined || target instanceof Date ? await planPointInTime(repo, target) : target;
    const dataDir = path.join(temp.dir, `restored-${name}`);
    const result = await restorePhysical(repo, plan, {
      dataDir,
      scratch: path.join(temp.dir, `scratch-${name}`),
      superuser: 'trends',
      runAs: runAsFor('postgres', temp.dir),
      ...(receivedWalDir ? { receivedWalDir } : {}),
    });
    const restored = new EmbeddedPostgres({
      root: path.join(temp.dir, `root-${name}`),
      user: 'trends',
      database: 'postgres',
      port: 0,
    });
    // The restored cluster keeps the original's roles: reuse its password file.
    (restored as unknown as { dataDir: string }).dataDir = dataDir;
    Object.assign(restored, { passwordFile: pg.passwordFile });
    const running = await restored.start();
    const check = openDatabase(running.url, { max: 1 });
    try {
      const rows = await check<{ id: number }[]>`select id from events order by id`;
      return { ids: rows.map((r) => r.id), result };
    } finally {
      await check.end({ timeout: 5 });
      await restored.stop();
    }
  }
});
