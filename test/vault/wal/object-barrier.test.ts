import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { migrate } from '../../../src/db/migrate.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { runAsFor } from '../../../src/embedded/run-as.ts';
import { sleep } from '../../../src/lib/process.ts';
import {
  type Repository,
  writeObjectsJournal,
  writeObjectsStreamState,
} from '../../../src/vault/repository/index.ts';
import { planMoment } from '../../../src/vault/restore-to-moment.ts';
import { openRepository, type Target } from '../../../src/vault/targets.ts';
import { takeBaseBackup } from '../../../src/vault/wal/base-backup.ts';
import { parseLsn } from '../../../src/vault/wal/lsn.ts';
import { restorePhysical } from '../../../src/vault/wal/pitr-restore.ts';
import { WalReceiver } from '../../../src/vault/wal/receiver.ts';
import { WalShipper } from '../../../src/vault/wal/shipper.ts';
import { tempDir } from '../../support/temp.ts';

// I8 with the WAL's object markers (migration 0019): restore latest replays past the objects' watermark up to the
// first commit that made live an object the vault lacks — not further, and not only to the watermark.
describe('I8: restore latest stops at the first commit of an object the vault lacks', {
  timeout: 300_000,
}, () => {
  const temp = tempDir('object-barrier');
  const pg = new EmbeddedPostgres({
    root: path.join(temp.dir, 'data'),
    user: 'trends',
    database: 'postgres',
    port: 0,
  });
  let sql: Sql;
  let url: string;
  let receiver: WalReceiver;
  let shipper: WalShipper;
  let repo: Repository;
  let firstBase: string;
  let expected: number[];
  const walDir = path.join(temp.dir, 'backups', 'incoming', 'wal');
  const config = loadConfig(
    {
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      BACKUP_KEY: randomBytes(32).toString('hex'),
    },
    { dotEnv: false },
  );

  beforeAll(async () => {
    const running = await pg.start();
    url = running.url;
    sql = openDatabase(url, { max: 2 });
    await migrate(sql);
    await sql`create table events (id serial primary key, note text not null)`;
    const target: Target = {
      name: 'local',
      offsite: false,
      store: new FileBlobStore(path.join(temp.dir, 'backups')),
    };
    receiver = new WalReceiver({ databaseUrl: url, walDir });
    receiver.start();
    repo = await openRepository(target, config, { create: true });
    shipper = new WalShipper({ walDir, targets: [target], config, sql });
  });
  afterAll(async () => {
    await receiver?.stop();
    await sql?.end({ timeout: 5 });
    await pg.stop();
    temp.remove();
  });

  const object = async (name: string) => {
    const sha256 = createHash('sha256').update(name).digest('hex');
    const key = `example/${sha256.slice(0, 2)}/${sha256}.png`;
    await sql`insert into objects (key, sha256, size, content_type, kind) values (${key}, ${sha256}, 1, 'image/png', 'example')`;
    return { key, sha256, size: 1, chunks: [] as string[] };
  };
  const event = async (note: string) =>
    (await sql<{ id: number }[]>`insert into events (note) values (${note}) returning id`)[0]!.id;

  it('replays writes without objects and objects the vault holds, and stops before one it lacks', async () => {
    for (let i = 0; i < 200 && !(receiver.state === 'streaming' && shipper.progress()[0]?.shippedLsn); i++) {
      await shipper.cycle();
      await sleep(100);
    }
    const base = await takeBaseBackup(repo, url);
    firstBase = base.id;
    expect(base.objectMarkers).toBe(true);
    // The base backup's WAL in the vault; what follows stays on the receiver's disk only.
    await shipPast(base.endLsn);
    const early = await object('before the watermark');
    await sleep(50);
    const watermark = (await sql<{ t: Date }[]>`select clock_timestamp() as t`)[0]!.t;
    await sleep(50);
    const first = await event('after the watermark, no object');
    const held = await object('held by the vault');
    const second = await event('after an object the vault holds');
    const lacking = await object('in no backup');
    const third = await event('after the object the vault lacks');
    await sleep(1000);
    // What the object stream would have recorded: the watermark, and the objects it stored.
    await writeObjectsJournal(repo, { version: 1, time: new Date().toISOString(), objects: [early, held] });
    await writeObjectsStreamState(repo, {
      version: 1,
      time: new Date().toISOString(),
      watermark: watermark.toISOString(),
    });

    const plan = await planMoment(config, repo, undefined);
    expect(plan.objectBarrier?.watermark.toISOString()).toBe(watermark.toISOString());
    expected = [first, second];
    expect(third).toBeGreaterThan(second);
    const keys = await restoreAndRead(plan, 'restored', expected);
    expect([keys.has(early.key), keys.has(held.key), keys.has(lacking.key)]).toEqual([true, true, false]);
  });

  it('with a base backup newer than the watermark, replays from the one before it rather than stopping at the watermark', async () => {
    const newer = await takeBaseBackup(repo, url);
    await shipPast(newer.endLsn);
    const plan = await planMoment(config, repo, undefined);
    expect(plan.base.id).toBe(firstBase);
    expect(plan.objectBarrier).toBeDefined();
    await restoreAndRead(plan, 'restored-older-base', expected);
  });

  /** Switches to a new segment and ships until the vault's WAL passes `lsn`. */
  async function shipPast(lsn: string): Promise<void> {
    await sql`select pg_switch_wal()`;
    const shipped = () => (shipper.progress()[0]?.shippedLsn ?? 0n) > parseLsn(lsn);
    for (let i = 0; i < 200 && !shipped(); i++) {
      await shipper.cycle();
      await sleep(100);
    }
    expect(shipped()).toBe(true);
  }

  async function restoreAndRead(
    plan: Awaited<ReturnType<typeof planMoment>>,
    folder: string,
    events: number[],
  ): Promise<Set<string>> {
    const dataDir = path.join(temp.dir, folder);
    const result = await restorePhysical(repo, plan, {
      dataDir,
      scratch: path.join(temp.dir, `${folder}-scratch`),
      superuser: 'trends',
      runAs: runAsFor('postgres', temp.dir),
      receivedWalDir: walDir,
    });
    expect(result.stoppedBy).toBe('object');
    const restored = new EmbeddedPostgres({
      root: path.join(temp.dir, `${folder}-root`),
      user: 'trends',
      database: 'postgres',
      port: 0,
    });
    (restored as unknown as { dataDir: string }).dataDir = dataDir;
    Object.assign(restored, { passwordFile: pg.passwordFile });
    const running = await restored.start();
    const check = openDatabase(running.url, { max: 1 });
    try {
      const rows = (await check<{ id: number }[]>`select id from events order by id`).map((r) => r.id);
      expect(rows).toEqual(events);
      return new Set((await check<{ key: string }[]>`select key from objects`).map((r) => r.key));
    } finally {
      await check.end({ timeout: 5 });
      await restored.stop();
    }
  }
});
