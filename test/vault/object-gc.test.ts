import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { deleteUserData } from '../../src/generation/user-data.ts';
import { holdOpen } from '../../src/lib/leftovers.ts';
import { sleep } from '../../src/lib/process.ts';
import { purgeTombstoned, purgeTotals } from '../../src/objects/purge.ts';
import { type ObjectRecord, objectKey } from '../../src/objects/store.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { collectGarbage } from '../../src/vault/object-gc.ts';
import { deleteBaseRecord, writeBaseRecord } from '../../src/vault/repository/wal-records.ts';
import { localTarget, openRepository } from '../../src/vault/targets.ts';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

const HOUR = 3600_000;

/** A user with one succeeded generation whose photo is `bytes`. */
async function userWithPhoto(vault: VaultEnv, user: string, bytes: Buffer): Promise<ObjectRecord> {
  const { sql } = vault.db;
  await sql`insert into prompts (name, current_version) values ('p', 1) on conflict do nothing`;
  await sql`insert into prompt_versions (name, version, sha256, content, origin)
    values ('p', 1, ${'0'.repeat(64)}, ${SAMPLE_PROMPT('p')}, 'api') on conflict do nothing`;
  await sql`insert into trends (slug, title, prompt_name) values ('t', 'T', 'p') on conflict do nothing`;
  const photo = await vault.objects.put(Readable.from([bytes]), { kind: 'photo', maxBytes: 1e9 });
  await sql`insert into generations (user_id, trend_slug, prompt_name, prompt_version, params, variants, photo_key, status)
    values (${user}, 't', 'p', 1, '{}', 1, ${photo.key}, 'succeeded')`;
  return photo;
}

describe('the collector (I3)', () => {
  let vault: VaultEnv;
  let config: Config;
  const collect = (extra: { now?: Date } = {}) =>
    collectGarbage({
      config,
      sql: vault.db.sql,
      databaseUrl: vault.db.url,
      objects: vault.objects.blobs,
      graceSeconds: 600,
      ...extra,
    });
  const present = async (key: string) => Boolean(await vault.objects.blobs.head(key));

  beforeAll(async () => {
    vault = await startVaultEnv('object-gc');
    config = loadConfig({ ...vault.env, BACKUP_PITR_WINDOW: '2s' }, { dotEnv: false });
  });
  afterAll(async () => vault?.close());

  it('I3: deleted bytes stay inside the window and while a retained snapshot holds them, then go', async () => {
    const inSnapshot = await userWithPhoto(vault, 'ada', fakePng(4000));
    expect((await runCli(['backup'], vault.env)).code).toBe(0);
    const boBytes = fakePng(5000);
    const afterSnapshot = await userWithPhoto(vault, 'bo', boBytes);
    await deleteUserData(vault.db.sql, 'ada');
    await deleteUserData(vault.db.sql, 'bo');

    // Inside the point-in-time window a restored database may still refer to both.
    const early = await collect();
    expect(early.tombstoned.removed).toBe(0);
    expect(await present(inSnapshot.key)).toBe(true);
    expect(await present(afterSnapshot.key)).toBe(true);

    await sleep(2500);
    const late = await collect();
    expect(late.skipped).toBeNull();
    // Only in no snapshot: gone. Held by the retained snapshot: kept.
    expect(late.tombstoned).toMatchObject({ removed: 1, bytes: afterSnapshot.size, keptBySnapshots: 1 });
    expect(await present(afterSnapshot.key)).toBe(false);
    expect(await present(inSnapshot.key)).toBe(true);
    const [row] = await vault.db
      .sql`select deleted_at, purged_at from objects where key = ${afterSnapshot.key}`;
    expect(row!.purged_at).not.toBeNull();

    // A newer snapshot (without the deleted objects), the older one forgotten: nothing needs the bytes any more.
    expect((await runCli(['backup'], vault.env)).code).toBe(0);
    const forget = await runCli(['forget', '--keep-last', '1', '--prune'], vault.env);
    expect(forget.code, forget.stderr).toBe(0);
    const last = await collect();
    expect(last.tombstoned).toMatchObject({ removed: 1, bytes: inSnapshot.size, keptBySnapshots: 0 });
    expect(await present(inSnapshot.key)).toBe(false);
    expect(await vault.objects.find(inSnapshot.key)).toBeUndefined();

    // Idempotent: a second run finds nothing, and the totals count each object once.
    expect((await collect()).tombstoned.removed).toBe(0);
    expect(await purgeTotals(vault.db.sql)).toContainEqual({
      reason: 'tombstoned',
      items: 2,
      bytes: inSnapshot.size + afterSnapshot.size,
    });

    const metrics = await createMetrics(vault.db.sql, config).registry.metrics();
    expect(metrics).toMatch(/^trendgen_objects_purged_total\{reason="tombstoned"\} 2$/m);
    expect(metrics).toContain(
      `trendgen_objects_purged_bytes_total{reason="tombstoned"} ${inSnapshot.size + afterSnapshot.size}`,
    );

    // The same bytes uploaded again are written again: the row is live, the blob there.
    const again = await vault.objects.put(Readable.from([boBytes]), { kind: 'photo', maxBytes: 1e9 });
    expect(again.key).toBe(afterSnapshot.key);
    expect(await present(again.key)).toBe(true);
    expect(await vault.objects.find(again.key)).toBeDefined();
  }, 180_000);

  it('I3: a base backup older than the window keeps what a restore to its moments could need', async () => {
    const photo = await userWithPhoto(vault, 'dee', fakePng(4500));
    await deleteUserData(vault.db.sql, 'dee');
    const repo = await openRepository(localTarget(config), config);
    const base = {
      id: 'b'.repeat(16),
      time: new Date(Date.now() - HOUR).toISOString(),
      startedAt: new Date(Date.now() - HOUR - 60_000).toISOString(),
      timeline: 1,
      startLsn: '0/2000028',
      endLsn: '0/2000100',
      tree: 'a'.repeat(64),
      size: 1,
      serverVersionNum: 160000,
      systemIdentifier: '1',
    };
    await writeBaseRecord(repo, base);
    await sleep(2500);
    // Outside BACKUP_PITR_WINDOW, but a restore can still go back an hour: kept.
    const kept = await collect();
    expect(kept.cutoff).toBe(base.startedAt);
    expect(kept.tombstoned.removed).toBe(0);
    expect(await present(photo.key)).toBe(true);
    await deleteBaseRecord(repo, base);
    expect((await collect()).tombstoned).toMatchObject({ removed: 1, bytes: photo.size });
    expect(await present(photo.key)).toBe(false);
  });

  it('I3: orphans older than the grace period go, younger ones and those a snapshot holds stay', async () => {
    const old = fakePng(3000);
    const young = fakePng(3100);
    const keyOf = (bytes: Buffer) =>
      objectKey('output', createHash('sha256').update(bytes).digest('hex'), 'png');
    await vault.objects.blobs.put(keyOf(old), old);
    await vault.objects.blobs.put(keyOf(young), young);
    const hourAgo = new Date(Date.now() - HOUR);
    utimesSync(path.join(vault.objectsDir, ...keyOf(old).split('/')), hourAgo, hourAgo);
    // Not an object key: never collected, whatever its age.
    await vault.objects.blobs.put('health/probe', Buffer.from('x'));
    utimesSync(path.join(vault.objectsDir, 'health', 'probe'), hourAgo, hourAgo);

    const report = await collect();
    expect(report.orphans).toEqual({ removed: 1, bytes: old.length });
    expect(await present(keyOf(old))).toBe(false);
    expect(await present(keyOf(young))).toBe(true);
    expect(await present('health/probe')).toBe(true);

    // An upload of the orphan's bytes after its removal gets them written again.
    const record = await vault.objects.put(Readable.from([old]), { kind: 'output', maxBytes: 1e9 });
    expect(record.key).toBe(keyOf(old));
    expect(await present(record.key)).toBe(true);
    expect(await vault.objects.find(record.key)).toBeDefined();
  });

  it('I3: a store full of blobs the database does not know (a wrong DATABASE_URL) is left alone', async () => {
    const stranger = await createTestDatabase();
    try {
      const bytes = fakePng(3200);
      const key = objectKey('output', createHash('sha256').update(bytes).digest('hex'), 'png');
      await vault.objects.blobs.put(key, bytes);
      const hourAgo = new Date(Date.now() - HOUR);
      utimesSync(path.join(vault.objectsDir, ...key.split('/')), hourAgo, hourAgo);
      const report = await collectGarbage({
        config,
        sql: stranger.sql,
        databaseUrl: stranger.url,
        objects: vault.objects.blobs,
        graceSeconds: 600,
      });
      expect(report.skipped).toMatch(/no row among the 0 in the objects index/);
      expect(report.orphans.removed).toBe(0);
      expect(await present(key)).toBe(true);
    } finally {
      await stranger.drop();
    }
  });

  it('I3: crash leftovers older than the grace period go; younger ones and those in use stay', async () => {
    const tmp = path.join(config.dataDir, 'tmp');
    const hourAgo = new Date(Date.now() - HOUR);
    const make = (file: string, aged: boolean) => {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, 'leftover');
      if (aged) utimesSync(file, hourAgo, hourAgo);
      return file;
    };
    const ageDir = (dir: string) => utimesSync(dir, hourAgo, hourAgo);
    const oldSpool = make(path.join(tmp, 'uploads', 'old.upload'), true);
    const youngSpool = make(path.join(tmp, 'uploads', 'young.upload'), false);
    const openSpool = make(path.join(tmp, 'uploads', 'open.upload'), true);
    const oldTemp = make(path.join(vault.objectsDir, '.tmp', 'old.tmp'), true);
    make(path.join(tmp, 'backup-dead', 'postgres', 'dump.dat'), true);
    ageDir(path.join(tmp, 'backup-dead', 'postgres'));
    ageDir(path.join(tmp, 'backup-dead'));
    // A scratch folder whose pid file names a live process (this one): a drill still running.
    make(path.join(tmp, 'drill-live', 'pg', 'postmaster.pid'), true);
    writeFileSync(path.join(tmp, 'drill-live', 'pg', 'postmaster.pid'), `${process.pid}\n`);
    utimesSync(path.join(tmp, 'drill-live', 'pg', 'postmaster.pid'), hourAgo, hourAgo);
    ageDir(path.join(tmp, 'drill-live', 'pg'));
    ageDir(path.join(tmp, 'drill-live'));
    // A restore's scratch folder, idle for an hour while the restore works elsewhere, held open by it.
    make(path.join(tmp, 'restore-held', 'postgres', 'toc.dat'), true);
    ageDir(path.join(tmp, 'restore-held', 'postgres'));
    ageDir(path.join(tmp, 'restore-held'));
    const release = holdOpen(path.join(tmp, 'restore-held'));
    // A process holding the spool file open: an upload in flight whose client paused.
    const holder = spawn('sh', ['-c', `exec 3<"${openSpool}"; sleep 60`], { stdio: 'ignore' });
    try {
      await sleep(300);
      const report = await collect();
      expect(report.leftovers.removed).toBe(3);
      const { existsSync } = await import('node:fs');
      expect(existsSync(oldSpool)).toBe(false);
      expect(existsSync(oldTemp)).toBe(false);
      expect(existsSync(path.join(tmp, 'backup-dead'))).toBe(false);
      expect(existsSync(youngSpool)).toBe(true);
      expect(existsSync(openSpool)).toBe(true);
      expect(existsSync(path.join(tmp, 'drill-live'))).toBe(true);
      expect(existsSync(path.join(tmp, 'restore-held'))).toBe(true);
      // Once the restore lets go (or dies), its folder is a leftover like any other.
      release();
      expect((await collect()).leftovers.removed).toBe(1);
      expect(existsSync(path.join(tmp, 'restore-held'))).toBe(false);
    } finally {
      release();
      holder.kill('SIGKILL');
    }
  });

  it('I3: the scheduler process collects at start-up', async () => {
    const spool = path.join(config.dataDir, 'tmp', 'uploads', 'killed.upload');
    mkdirSync(path.dirname(spool), { recursive: true });
    writeFileSync(spool, 'half an upload');
    const hourAgo = new Date(Date.now() - HOUR);
    utimesSync(spool, hourAgo, hourAgo);
    const scheduler = runCli(['scheduler'], {
      ...vault.env,
      BACKUP_SCHEDULE: 'off',
      DRILL_SCHEDULE: 'off',
    });
    try {
      const { existsSync } = await import('node:fs');
      const deadline = Date.now() + 60_000;
      while (existsSync(spool) && Date.now() < deadline) await sleep(200);
      expect(existsSync(spool)).toBe(false);
    } finally {
      scheduler.child.kill('SIGTERM');
      await scheduler;
    }
  }, 90_000);

  it('I3: an in-place restore does not write back bytes the collector removed', async () => {
    const kept = await userWithPhoto(vault, 'cy', fakePng(6000));
    expect((await runCli(['backup'], vault.env)).code).toBe(0);
    await deleteUserData(vault.db.sql, 'cy');
    // Removed as if the snapshot were gone (a snapshot on a target the collector no longer sees).
    await vault.db.sql`update objects set deleted_at = now() - interval '1 day' where key = ${kept.key}`;
    expect(await purgeTombstoned(vault.db.sql, vault.objects.blobs, kept.key, new Date())).toBe(kept.size);
    expect(await present(kept.key)).toBe(false);

    const restore = await runCli(['restore', 'latest', '--in-place', '--yes', '--json'], vault.env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await present(kept.key)).toBe(false);
    const [row] = await vault.db.sql`select deleted_at, purged_at from objects where key = ${kept.key}`;
    expect(row!.deleted_at).not.toBeNull();
    expect(row!.purged_at).not.toBeNull();
  }, 180_000);
});
