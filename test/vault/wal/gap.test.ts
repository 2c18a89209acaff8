import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Sql } from '../../../src/db/connection.ts';
import { EmbeddedPostgres } from '../../../src/embedded/postgres.ts';
import { sleep, waitFor } from '../../../src/lib/process.ts';
import { bareMachine } from '../../support/bare-machine.ts';
import { runCli } from '../../support/cli.ts';
import { killTree } from '../../support/processes.ts';

interface Status {
  window: { from: string; until: string | null } | null;
  sources: Array<{ source: string; recoverableUntil: string | null; error: string | null }>;
}

/**
 * I11, item 2's bound: while `trendgen protect` is down, PostgreSQL keeps at most max_slot_wal_keep_size of WAL
 * for it, then gives the slot up so the data disk never fills. When protect comes back the stream has a gap:
 * status says so in one sentence, a new base backup starts a new window, moments after it restore, and a moment
 * inside the gap is refused rather than restored wrongly.
 */
describe('I11 the WAL stream loses its slot while protect is down', { timeout: 300_000 }, () => {
  const machine = bareMachine('wal-gap');
  const { temp, dataDir, env } = machine;
  const pg = machine.postgres({ max_slot_wal_keep_size: '64MB' });
  let sql: Sql;
  let protect: ReturnType<typeof runCli> | undefined;

  beforeAll(async () => {
    const running = await pg.start();
    sql = openDatabase(running.url, { max: 2 });
  });
  afterAll(async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await sql?.end({ timeout: 1 }).catch(() => {});
    await pg.stop().catch(() => {});
    await new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 })
      .stop()
      .catch(() => {});
    temp.remove();
  });

  const status = async (): Promise<Status> => {
    const result = await runCli(['status', '--json'], env);
    return JSON.parse(result.stdout || 'null') ?? { window: null, sources: [] };
  };
  const startProtect = () => {
    protect = runCli(['protect'], env);
  };
  const stopProtect = async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await protect?.catch(() => undefined);
    protect = undefined;
  };

  it('says there is a gap, takes a new base backup, restores after it and refuses inside it', async () => {
    startProtect();
    const first = await waitFor(
      'the first window',
      async () => (await status()).window ?? undefined,
      120_000,
      500,
    );
    await sql`create table ledger (id serial primary key, note text not null)`;
    await sql`insert into ledger (note) values ('before the gap')`;
    await sleep(1500);
    await stopProtect();

    // Down: more WAL than max_slot_wal_keep_size, and a checkpoint, make PostgreSQL give the slot up.
    const gapStarted = new Date();
    await sql`insert into ledger (note) values ('inside the gap')`;
    for (let i = 0; i < 6; i++) {
      await sql`insert into ledger (note) select 'filler ' || g from generate_series(1, 2000) g`;
      await sql`select pg_switch_wal()`;
    }
    await sql`checkpoint`;
    const [slot] = await sql<{ wal_status: string }[]>`select wal_status from pg_replication_slots`;
    expect(slot?.wal_status).toBe('lost');

    startProtect();
    // The sentence stands from the receiver's failure until the new base backup is stored, a second or two:
    // read where `trendgen status` reads it (wal_stream_status, rewritten every 500 ms), polled faster than that.
    const said = await waitFor(
      'status to report the gap',
      async () =>
        (await sql<{ error: string | null }[]>`select error from wal_stream_status`).find((r) =>
          /gap/.test(r.error ?? ''),
        )?.error ?? undefined,
      60_000,
      50,
    );
    expect(said).toMatch(
      /^The WAL stream has a gap \(.+\); a new base backup is being taken, and moments inside the gap cannot be restored\.$/,
    );
    // The new base backup closes it: no error left, and the stream follows new writes again.
    await sql`insert into ledger (note) values ('after the gap')`;
    const after = Date.now();
    await waitFor(
      'the stream to pass the write after the gap',
      async () => {
        const postgres = (await status()).sources.find((s) => s.source === 'postgres');
        return postgres && !postgres.error && Date.parse(postgres.recoverableUntil ?? '') > after
          ? true
          : undefined;
      },
      120_000,
      500,
    );
    const window = (await status()).window!;
    expect(Date.parse(window.from)).toBe(Date.parse(first.from));

    // A power cut and a lost data disk: the newest moment comes back, with the writes after the gap.
    await stopProtect();
    process.kill(pg.findRunning()!.pid, 'SIGKILL');
    await sql.end({ timeout: 1 }).catch(() => {});
    await sleep(500);
    rmSync(dataDir, { recursive: true, force: true });
    const inside = await runCli(
      ['restore', '--to-time', new Date(gapStarted.getTime() + 500).toISOString()],
      env,
    );
    expect(inside.code, inside.stdout).toBe(1);
    expect(inside.stderr).toMatch(/^trendgen: [^\n]+\n?$/);
    expect(inside.stderr).toMatch(
      /falls in a gap of the WAL stream .*: nothing between \S+ and the next base backup at \S+ can be restored/,
    );
    const restored = await runCli(['restore', 'latest', '--json'], env);
    expect(restored.code, restored.stderr).toBe(0);
    const back = new EmbeddedPostgres({ root: dataDir, user: 'trends', database: 'trends', port: 0 });
    const running = await back.start();
    const check = openDatabase(running.url, { max: 1 });
    try {
      const notes = (
        await check<{ note: string }[]>`select note from ledger where note not like 'filler%' order by id`
      ).map((r) => r.note);
      expect(notes).toEqual(['before the gap', 'inside the gap', 'after the gap']);
    } finally {
      await check.end({ timeout: 5 });
      await back.stop();
    }
  });
});
