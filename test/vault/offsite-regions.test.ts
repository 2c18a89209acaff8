import path from 'node:path';
import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { loadConfig } from '../../src/config/config.ts';
import { ensureDatabase, openDatabase, type Sql } from '../../src/db/connection.ts';
import { sleep } from '../../src/lib/process.ts';
import { ObjectStore } from '../../src/objects/store.ts';
import { registerBackupMetrics } from '../../src/ops/metrics-backups.ts';
import { checkTargets } from '../../src/vault/check-targets.ts';
import { listBaseBackups } from '../../src/vault/repository/index.ts';
import { openRepository, resolveTargets, snapshotsOnTargets } from '../../src/vault/targets.ts';
import { type ProtectionStatus, protectionStatus } from '../../src/vault/wal/report.ts';
import { fakePng } from '../support/api.ts';
import { bareMachine } from '../support/bare-machine.ts';
import { runCli } from '../support/cli.ts';
import { killTree } from '../support/processes.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { until, waitForStreamed } from './stream/support.ts';

const REGIONS = ['region-a', 'region-b'] as const;
const OUTAGE_MS = 15_000;
/** The first part of the outage, when region-b's requests hang instead of failing. */
const HANG_MS = 7_000;

type Source = ProtectionStatus['sources'][number];

// Issue 13 item 3: two offsite targets (BACKUP_OFFSITE_TARGETS) on two separate S3 servers, each reached with its
// own endpoint, region and credentials while the object store's S3 settings point nowhere. One region goes
// away for a while (its requests hang, then fail): the other stays current and the lost one says so on its
// own; back, it catches up.
describe('several offsite regions: one down, the other stays current, the first catches up', () => {
  const servers: S3Server[] = [];
  const proxies: TcpProxy[] = [];
  let machine: ReturnType<typeof bareMachine> | undefined;
  let pg: ReturnType<ReturnType<typeof bareMachine>['postgres']> | undefined;
  let sql: Sql | undefined;
  let protect: ReturnType<typeof runCli> | undefined;
  let writing = true;
  afterAll(async () => {
    writing = false;
    if (protect?.child.pid) killTree(protect.child.pid);
    await sql?.end({ timeout: 1 }).catch(() => {});
    await pg?.stop().catch(() => {});
    for (const proxy of proxies) await proxy.close();
    for (const server of servers) await server.stop();
    machine?.temp.remove();
  });

  it('snapshots, WAL and objects reach both; region-b away 15 s: region-a stays current, region-b reports and catches up', async () => {
    const started = Date.now();
    const phase = (what: string) => console.log(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
    servers.push(...(await Promise.all(REGIONS.map(() => startS3Server({ buckets: ['offsite'] })))));
    proxies.push(...(await Promise.all(servers.map((s) => startTcpProxy(Number(new URL(s.endpoint).port))))));
    const [proxyA, proxyB] = proxies as [TcpProxy, TcpProxy];
    // s3rver's credentials, written as an operator would (percent-encoded), each with its own region.
    const offsite = [
      `region-a=s3://S3RVER:S3RVER@offsite/vault?endpoint=http://127.0.0.1:${proxyA.port}&region=eu-west-1`,
      `region-b=s3://S3RVER:S3RVER@offsite/vault?endpoint=http://127.0.0.1:${proxyB.port}&region=us-west-2`,
    ].join(',');
    machine = bareMachine('regions', {
      BACKUP_OFFSITE_TARGETS: offsite,
      BACKUP_PASSWORD: 'regions password',
      // The object store's S3 settings lead nowhere: the offsite targets must not use them.
      S3_ENDPOINT: 'http://127.0.0.1:9',
      AWS_ACCESS_KEY_ID: 'NOT-THE-OFFSITE-KEY',
      AWS_SECRET_ACCESS_KEY: 'not-the-offsite-secret',
    });
    const { env } = machine;
    const config = loadConfig(env, { dotEnv: false });
    pg = machine.postgres();
    const running = await pg.start();
    await ensureDatabase(pg.url(running.port, 'postgres'), config.postgres.database);
    sql = openDatabase(running.url, { max: 4 });
    protect = runCli(['protect'], env);
    const objects = new ObjectStore(
      sql,
      new FileBlobStore(path.join(machine.dataDir, 'objects')),
      path.join(machine.temp.dir, 'spool'),
    );
    const status = () => protectionStatus(sql!, config);
    const source = (s: ProtectionStatus, kind: Source['source'], target: string) =>
      s.sources.find((x) => x.source === kind && x.target === target);
    const current = (s: ProtectionStatus, target: string) =>
      (['postgres', 'objects'] as const).every((kind) => {
        const row = source(s, kind, target);
        return row !== undefined && row.lagSeconds !== null && row.lagSeconds < 3 && !row.error;
      });
    const targetRepo = (name: string) => openRepository(resolveTargets(config, [name])[0]!, config);

    // protect migrates, streams, takes the first base backup and copies it to both regions.
    await until(
      'protect to stream to every target',
      async () => {
        // Before protect's migration there is no status to read.
        const s = await status().catch(() => undefined);
        return s !== undefined && ['local', ...REGIONS].every((t) => current(s, t));
      },
      60_000,
      500,
    );
    await until(
      'the first base backup in both regions',
      async () => {
        for (const name of REGIONS) {
          const repo = await targetRepo(name).catch(() => undefined);
          if (!repo || (await listBaseBackups(repo)).backups.length === 0) return false;
        }
        return true;
      },
      30_000,
      500,
    );
    phase('streaming, base backups in both regions');
    // A steady trickle of commits, so that a target that stops receiving falls behind.
    await sql`create table ticks (id serial primary key, at timestamptz not null default clock_timestamp())`;
    const writer = (async () => {
      while (writing) {
        await sql!`insert into ticks default values`.catch(() => {});
        await sleep(100);
      }
    })();
    const put = async (seed: number) =>
      (await objects.put(Readable.from([fakePng(4_000 + seed)]), { kind: 'photo', maxBytes: 1e9 })).key;

    const first = await runCli(['backup', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(
      JSON.parse(first.stdout).targets.map((t: { name: string; ok: boolean }) => [t.name, t.ok]),
    ).toEqual([
      ['local', true],
      ['region-a', true],
      ['region-b', true],
    ]);
    const before = [await put(1), await put(2)];
    const [repoA, repoB] = await Promise.all(REGIONS.map(targetRepo));
    await Promise.all([waitForStreamed(repoA!, before, 10_000), waitForStreamed(repoB!, before, 10_000)]);

    phase('first snapshot and objects in both regions');
    // Region B goes away: first its network drops every packet (requests hang), then its server is gone.
    proxyB.setMode('hang');
    const down = Date.now();
    // A backup during the outage, side by side with the stream.
    const partialRun = runCli(['backup', '--json'], env);
    const during = [await put(3), await put(4)];
    const lagA: number[] = [];
    let last: ProtectionStatus | undefined;
    while (Date.now() - down < OUTAGE_MS) {
      if (Date.now() - down >= HANG_MS) proxyB.setMode('down');
      last = await status();
      for (const kind of ['postgres', 'objects'] as const)
        lagA.push(source(last, kind, 'region-a')!.lagSeconds!);
      expect(current(last, 'region-a'), JSON.stringify(last.sources)).toBe(true);
      await sleep(1000);
    }
    const partial = await partialRun;
    expect(partial.code).toBe(1);
    const outcome = JSON.parse(partial.stdout).targets as Array<{
      name: string;
      ok: boolean;
      error?: string;
    }>;
    expect(outcome.map((t) => [t.name, t.ok])).toEqual([
      ['local', true],
      ['region-a', true],
      ['region-b', false],
    ]);
    expect(outcome[2]!.error).toMatch(/unreachable|ECONNRESET|socket/i);
    await waitForStreamed(repoA!, during, 5_000);
    phase('outage over');
    // The lost region says so on its own: its error, and a lag that grew with the outage.
    const lostPg = source(last!, 'postgres', 'region-b')!;
    const lostObjects = source(last!, 'objects', 'region-b')!;
    const outageSeconds = (Date.now() - down) / 1000;
    expect(lostPg.error).toBeTruthy();
    expect(lostObjects).toMatchObject({ state: 'failing' });
    expect(lostPg.lagSeconds!).toBeGreaterThan(outageSeconds - 8);
    expect(lostObjects.lagSeconds!).toBeGreaterThan(outageSeconds - 8);
    // As `trendgen status --json` and Prometheus see it.
    const cli = await runCli(['status', '--json'], env);
    const printed = JSON.parse(cli.stdout) as ProtectionStatus;
    // Under a minute behind: not yet unhealthy by status's rule.
    expect(cli.code).toBe(0);
    expect(current(printed, 'region-a')).toBe(true);
    expect(source(printed, 'postgres', 'region-b')!.lagSeconds!).toBeGreaterThan(10);
    const registry = new Registry();
    registerBackupMetrics(registry, sql, ['local', ...REGIONS]);
    const scraped = await registry.metrics();
    const lagLine = (kind: string, target: string) =>
      Number(
        new RegExp(
          `trendgen_recovery_point_lag_seconds\\{source="${kind}",target="${target}"\\} (\\S+)`,
        ).exec(scraped)?.[1],
      );
    expect(lagLine('postgres', 'region-a')).toBeLessThan(3);
    expect(lagLine('postgres', 'region-b')).toBeGreaterThan(10);

    phase('status and metrics read');
    // Back: region B catches up on its own (WAL, objects), and the next backup brings the missed snapshot.
    proxyB.setDown(false);
    const back = Date.now();
    let retried: number | undefined;
    await until(
      'region-b to catch up',
      async () => {
        const now = await status();
        // The first cycle that reaches it again (after the retry backoff) clears its errors.
        if (retried === undefined && !source(now, 'postgres', 'region-b')!.error)
          retried = (Date.now() - back) / 1000;
        return current(now, 'region-b');
      },
      45_000,
      250,
    );
    const catchUp = (Date.now() - back) / 1000;
    await waitForStreamed(repoB!, during, 5_000);
    phase('caught up');
    const next = await runCli(['backup', '--json'], env);
    expect(next.code, next.stderr).toBe(0);
    const listed = await snapshotsOnTargets(config);
    expect(listed.unreachable).toEqual([]);
    expect(listed.snapshots).toHaveLength(3);
    for (const snapshot of listed.snapshots)
      expect(snapshot.targets.sort()).toEqual(['local', 'region-a', 'region-b']);
    const [baseA, baseB] = await Promise.all(
      [repoA!, repoB!].map(async (repo) => (await listBaseBackups(repo)).backups.map((b) => b.id)),
    );
    expect(baseB).toEqual(baseA);
    phase('third backup; snapshots and base backups in every region');
    // Whole: every record on region-b (snapshots, WAL, base backups, the objects' journal) finds its blobs.
    const [checked] = await checkTargets(config, { only: ['region-b'] });
    expect(checked!.report?.ok, JSON.stringify(checked)).toBe(true);
    phase('checked');
    writing = false;
    await writer;
    const maxA = Math.max(...lagA);
    console.log(
      `offsite regions: region-a lag while region-b was away ${OUTAGE_MS / 1000} s (${HANG_MS / 1000} s hanging, then refusing): max ${maxA.toFixed(2)} s over ${lagA.length} samples (postgres and objects); region-b lag at the end of the outage: postgres ${lostPg.lagSeconds} s, objects ${lostObjects.lagSeconds} s; region-b reached again ${retried?.toFixed(1)} s after it returned (retry backoff), its lag under 3 s after ${catchUp.toFixed(1)} s; whole test ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(maxA).toBeLessThan(3);
  }, 120_000);
});
