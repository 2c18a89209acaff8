import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ensureDatabase, openDatabase } from '../../src/db/connection.ts';
import { migrate } from '../../src/db/migrate.ts';
import { embeddedPostgres, embeddedRedis } from '../../src/embedded/connect.ts';
import { formatReport, runDoctor } from '../../src/ops/doctor/index.ts';
import { tempDir } from '../support/temp.ts';

/**
 * The `trendgen up` layout: no DATABASE_URL or REDIS_URL, the embedded servers running under DATA_DIR
 * with their production settings (fsync, data checksums, AOF). Doctor must find them without starting
 * anything, and find nothing to FAIL on.
 */
describe('trendgen doctor next to trendgen up (I10)', () => {
  const temp = tempDir('doctor-up');
  const env = {
    DATA_DIR: path.join(temp.dir, 'data'),
    BACKUP_DIR: path.join(temp.dir, 'backups'),
    PROMPTS_DIR: path.join(temp.dir, 'prompts'),
    ADMIN_TOKEN: 'b'.repeat(32),
  };
  const config = loadConfig(env, { dotEnv: false, cwd: temp.dir });
  const postgres = embeddedPostgres(config);
  const redis = embeddedRedis(config);

  beforeAll(async () => {
    mkdirSync(config.promptsDir, { recursive: true });
    writeFileSync(
      path.join(config.promptsDir, 'ghibli.yaml'),
      'name: ghibli\ntitle: Ghibli\nmodel: local\ntemplate: "Paint {subject}"\n',
    );
    const [pg] = await Promise.all([postgres.start(), redis.start()]);
    await ensureDatabase(postgres.url(pg.port, 'postgres'), config.postgres.database);
    const sql = openDatabase(pg.url, { max: 1 });
    try {
      await migrate(sql);
      await sql`insert into backup_runs (started_at, finished_at, status, snapshot_id, targets)
        values (now() - interval '10 minutes', now() - interval '9 minutes', 'succeeded', 'abcdef012345',
                ${sql.json([{ name: 'local', ok: true }])})`;
    } finally {
      await sql.end();
    }
  });
  afterAll(async () => {
    await Promise.all([postgres.stop(), redis.stop()]);
    temp.remove();
  });

  it('finds the embedded servers, says OK for their durability settings and FAILs nothing', async () => {
    const report = await runDoctor(config);
    const text = formatReport(report);
    expect(
      report.checks.filter((c) => c.status === 'FAIL'),
      text,
    ).toEqual([]);
    expect(report.ok).toBe(true);
    expect(text).toMatch(
      /^OK {3}postgres\.reachable +PostgreSQL \d+(\.\d+)? at 127\.0\.0\.1:\d+, database trends$/m,
    );
    expect(text).toMatch(/^OK {3}postgres\.fsync +fsync is on: commits reach the disk$/m);
    expect(text).toMatch(/^OK {3}postgres\.data_checksums /m);
    expect(text).toMatch(/^OK {3}postgres\.wal_level +wal_level is replica/m);
    expect(text).toMatch(/^OK {3}redis\.aof +AOF is on$/m);
    expect(text).toMatch(/^OK {3}redis\.appendfsync +appendfsync is everysec/m);
    expect(text).toMatch(/^OK {3}backup\.local\.fresh +last successful backup to local 9 min ago/m);
    // Expected on this layout: no offsite target, backups beside the data, no repository, drill or protect process yet.
    const warned = report.checks.filter((c) => c.status === 'WARN').map((c) => c.id);
    expect(warned).toEqual(expect.arrayContaining(['backup.offsite', 'backup.same_device', 'drill.last']));
    for (const id of warned) {
      expect([
        'backup.offsite',
        'backup.same_device',
        'drill.last',
        'backup.local.repository',
        'backup.continuous',
        'stream.objects.local',
      ]).toContain(id);
    }
  });

  it('says FAIL with the hint "trendgen up" when the embedded servers are not running', async () => {
    const elsewhere = loadConfig(
      { ...env, DATA_DIR: path.join(temp.dir, 'empty') },
      { dotEnv: false, cwd: temp.dir },
    );
    const report = await runDoctor(elsewhere);
    for (const id of ['postgres.reachable', 'redis.reachable']) {
      const check = report.checks.find((c) => c.id === id)!;
      expect(check.status).toBe('FAIL');
      expect(check.message).toMatch(/is not running/);
      expect(check.hint).toMatch(/trendgen up/);
    }
    expect(report.checks.find((c) => c.id === 'postgres.fsync')!.message).toBe(
      'not checked: PostgreSQL is unreachable (see postgres.reachable)',
    );
  });
});
