import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { runAsFor } from '../../../src/embedded/run-as.ts';
import { sleep } from '../../../src/lib/process.ts';
import type { Repository } from '../../../src/vault/repository/index.ts';
import { openRepository, type Target } from '../../../src/vault/targets.ts';
import { takeBaseBackup } from '../../../src/vault/wal/base-backup.ts';
import { parseLsn } from '../../../src/vault/wal/lsn.ts';
import { planPointInTime, recoverableWindow } from '../../../src/vault/wal/pitr-plan.ts';
import { restorePhysical } from '../../../src/vault/wal/pitr-restore.ts';
import { WAL_RECEIVER_NAME, WalReceiver } from '../../../src/vault/wal/receiver.ts';
import { WalShipper } from '../../../src/vault/wal/shipper.ts';
import { legOfSegment, parseHistory } from '../../../src/vault/wal/timelines.ts';
import { tempDir } from '../../support/temp.ts';

describe('timeline history files', () => {
  it('give the path of legs that ends on a timeline', () => {
    const legs = parseHistory(
      '1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tat lsn 0/5000000\n',
      3,
    );
    expect(legs).toEqual([
      { timeline: 1, from: 0n, until: parseLsn('0/3000148') },
      { timeline: 2, from: parseLsn('0/3000148'), until: parseLsn('0/5000000') },
      { timeline: 3, from: parseLsn('0/5000000'), until: undefined },
    ]);
    // The segment holding a switch point is read from the newer timeline, which copied it up to the switch.
    expect(legOfSegment(legs, 2n).timeline).toBe(1);
    expect(legOfSegment(legs, 3n).timeline).toBe(2);
    expect(legOfSegment(legs, 5n).timeline).toBe(3);
    expect(() => parseHistory('x', 2)).toThrow(/history file of timeline 2 has a malformed line/);
  });
});

/**
 * I11 across restores: a restore promotes PostgreSQL onto a new timeline. What the restored service commits is
 * recoverable as soon as its WAL is shipped, from the older timeline's base backup through the switch (before
 * any base backup of the new timeline exists), and a later restore never reuses a timeline the vault holds.
 */
describe('I11 point-in-time restore follows timelines', { timeout: 180_000 }, () => {
  const temp = tempDir('timelines');
  const store = new FileBlobStore(path.join(temp.dir, 'backups'));
  const target: Target = { name: 'local', offsite: false, store };
  let config: Config;
  let repo: Repository;
  const servers: EmbeddedPostgres[] = [];

  /** A PostgreSQL on `dataDir` (made by initdb when absent), streamed into the vault like `trendgen protect`. */
  async function protectedSystem(name: string, dataDir?: string) {
    const pg = new EmbeddedPostgres({
      root: path.join(temp.dir, `root-${name}`),
      user: 'trends',
      database: 'postgres',
      port: 0,
    });
    if (dataDir) {
      (pg as unknown as { dataDir: string }).dataDir = dataDir;
      Object.assign(pg, { passwordFile: servers[0]!.passwordFile });
    }
    servers.push(pg);
    const running = await pg.start();
    const sql = openDatabase(running.url, { max: 2 });
    const walDir = path.join(temp.dir, `incoming-${name}`);
    const receiver = new WalReceiver({ databaseUrl: running.url, walDir });
    receiver.start();
    const shipper = new WalShipper({ walDir, targets: [target], config, sql });
    const shipAll = async () => {
      for (let i = 0; i < 200; i++) {
        await shipper.cycle();
        if (receiver.state === 'streaming' && shipper.progress()[0]!.lagSeconds === 0) return;
        await sleep(100);
      }
      throw new Error(`the stream of ${name} did not catch up: ${JSON.stringify(shipper.progress())}`);
    };
    const timeline = async () =>
      (await sql<{ tli: number }[]>`select timeline_id as tli from pg_control_checkpoint()`)[0]!.tli;
    const stop = async () => {
      await receiver.stop();
      await sql.end({ timeout: 5 });
      await pg.stop();
    };
    return { url: running.url, sql, shipAll, timeline, stop };
  }

  async function restoreTo(name: string, moment: Date | undefined) {
    const plan = await planPointInTime(repo, moment);
    const dataDir = path.join(temp.dir, `restored-${name}`);
    await restorePhysical(repo, plan, {
      dataDir,
      scratch: path.join(temp.dir, `scratch-${name}`),
      superuser: 'trends',
      runAs: runAsFor('postgres', temp.dir),
      streamSlot: WAL_RECEIVER_NAME,
    });
    return { plan, dataDir };
  }

  const notes = async (sql: Sql) =>
    (await sql<{ note: string }[]>`select note from events order by id`).map((r) => r.note);

  beforeAll(async () => {
    config = loadConfig(
      {
        DATA_DIR: path.join(temp.dir, 'data'),
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        BACKUP_KEY: randomBytes(32).toString('hex'),
      },
      { dotEnv: false },
    );
    repo = await openRepository(target, config, { create: true });
  });
  afterAll(async () => {
    for (const pg of servers) await pg.stop().catch(() => {});
    temp.remove();
  });

  it('restores the new timeline before it has a base backup, and never reuses a timeline', async () => {
    const first = await protectedSystem('first');
    await first.sql`create table events (id serial primary key, note text not null)`;
    await first.shipAll();
    const base = await takeBaseBackup(repo, first.url);
    await first.sql`insert into events (note) values ('first 1')`;
    await sleep(50);
    const early = (await first.sql<{ t: Date }[]>`select clock_timestamp() as t`)[0]!.t;
    await sleep(50);
    await first.sql`insert into events (note) values ('first 2')`;
    await first.shipAll();
    await first.stop();

    // The first restore: timeline 2, streamed into the same vault; no base backup is taken on it.
    const one = await restoreTo('one', undefined);
    expect(one.plan.timeline).toBe(1);
    const second = await protectedSystem('second', one.dataDir);
    expect(await second.timeline()).toBe(2);
    await second.sql`insert into events (note) values ('second 1')`;
    await second.shipAll();
    await second.stop();
    const window = await recoverableWindow(repo);
    expect(window?.bases).toBe(1);

    // The newest moment is on timeline 2, reached from timeline 1's base backup through the switch.
    const two = await restoreTo('two', undefined);
    expect(two.plan.timeline).toBe(2);
    expect(two.plan.base.id).toBe(base.id);
    expect(two.plan.notice).toBeUndefined();
    const third = await protectedSystem('third', two.dataDir);
    expect(await notes(third.sql)).toEqual(['first 1', 'first 2', 'second 1']);
    expect(await third.timeline()).toBe(3);
    await third.stop();

    // A moment of timeline 1, before the first restore: the restore takes a timeline the vault does not hold.
    const back = await restoreTo('back', early);
    expect(back.plan.timeline).toBe(1);
    const fourth = await protectedSystem('fourth', back.dataDir);
    expect(await notes(fourth.sql)).toEqual(['first 1']);
    expect(await fourth.timeline()).toBeGreaterThan(2);
    await fourth.stop();
  });
});
