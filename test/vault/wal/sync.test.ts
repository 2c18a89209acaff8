import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { sleep } from '../../../src/lib/process.ts';
import { restoreToMoment } from '../../../src/vault/restore-to-moment.ts';
import { synchronousStall } from '../../../src/vault/wal/status.ts';
import { bareMachine } from '../../support/bare-machine.ts';
import { runCli } from '../../support/cli.ts';
import { killTree } from '../../support/processes.ts';

// I1 and I11 in synchronous mode: a commit is acknowledged only once its WAL is on the backup disk, so a power
// cut right after the acknowledgement, with DATA_DIR deleted, loses nothing; with the receiver down, commits
// wait and say why.
describe('I11 BACKUP_SYNC=on: recovery point zero', { timeout: 300_000 }, () => {
  const machine = bareMachine('sync', { BACKUP_SYNC: 'on' });
  const { temp, dataDir, env } = machine;
  const pg = machine.postgres({ synchronous_standby_names: 'trendgen_wal' });
  let sql: Sql;
  let protect: ReturnType<typeof runCli>;

  const startProtect = async () => {
    protect = runCli(['protect'], env);
    for (let i = 0; i < 240; i++) {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_replication where application_name = 'trendgen_wal' and sync_state = 'sync'`;
      if (row!.n > 0) return;
      await sleep(250);
    }
    throw new Error('the receiver never became the synchronous standby');
  };

  beforeAll(async () => {
    const running = await pg.start();
    // Set-up commits wait only for the local disk: no receiver runs yet.
    const admin = openDatabase(pg.url(running.port, 'postgres'), { max: 1, localCommit: true });
    await admin`create database trends`;
    await admin.end();
    const setup = openDatabase(running.url, { max: 1, localCommit: true });
    await setup`create table ledger (id serial primary key, note text not null)`;
    await setup.end();
    sql = openDatabase(running.url, { max: 3 });
  });

  afterAll(async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await sql?.end({ timeout: 1 }).catch(() => {});
    await new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 })
      .stop()
      .catch(() => {});
    temp.remove();
  });

  it('commits wait while the receiver is down, and every acknowledged commit survives a power cut', async () => {
    await startProtect();
    const acked: number[] = [];
    for (let i = 0; i < 20; i++) {
      acked.push(
        (await sql<{ id: number }[]>`insert into ledger (note) values (${`a ${i}`}) returning id`)[0]!.id,
      );
    }

    killTree(protect.child.pid!);
    let answered = false;
    const waiting = sql<{ id: number }[]>`insert into ledger (note) values ('while down') returning id`.then(
      (rows) => {
        answered = true;
        return rows[0]!.id;
      },
    );
    await sleep(1500);
    expect(answered).toBe(false);
    expect(await synchronousStall(sql)).toMatch(/every commit waits/);
    await startProtect();
    acked.push(await waiting);
    expect(await synchronousStall(sql)).toBeUndefined();

    // Wait for the first base backup, then keep writing and cut the power right after the last answer.
    for (let i = 0; i < 240; i++) {
      const result = await runCli(['status', '--json'], env);
      if (JSON.parse(result.stdout || '{}').window) break;
      await sleep(500);
    }
    for (let i = 0; i < 40; i++) {
      acked.push(
        (await sql<{ id: number }[]>`insert into ledger (note) values (${`b ${i}`}) returning id`)[0]!.id,
      );
    }
    killTree(protect.child.pid!);
    process.kill(pg.findRunning()!.pid, 'SIGKILL');
    await sql.end({ timeout: 1 }).catch(() => {});
    await sleep(300);
    rmSync(dataDir, { recursive: true, force: true });

    const config = loadConfig(env, { dotEnv: false, cwd: temp.dir });
    const report = await restoreToMoment(config, { time: undefined });
    expect(report.postgres.walFiles).toBeGreaterThan(0);
    const back = new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 });
    const running = await back.start();
    const check = openDatabase(running.url, { max: 1 });
    try {
      const ids = new Set((await check<{ id: number }[]>`select id from ledger`).map((r) => r.id));
      expect(acked.filter((id) => !ids.has(id))).toEqual([]);
    } finally {
      await check.end({ timeout: 5 });
      await back.stop();
    }
  });
});
