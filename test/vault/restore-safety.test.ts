import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { sleep, upPidFile } from '../../src/lib/process.ts';
import {
  databaseMarked,
  dirFingerprint,
  dirVerdict,
  markDatabase,
  markDir,
  markRedis,
  redisFingerprint,
  redisVerdict,
  unmarkDir,
} from '../../src/vault/restore-markers.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { flipStoredByte } from '../support/stored-blobs.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';
import { promptChunks, upOn } from './restore-safety-helpers.ts';

/** Issue 15, item 2: a restore never erases data written after it, nor data a running service uses. */
describe('restores that cannot erase live data (issue 15, item 2)', () => {
  let vault: VaultEnv;
  let snapshotId: string;
  beforeAll(async () => {
    vault = await startVaultEnv('restore-safety');
    await vault.db.sql`create table kept_rows (id text primary key)`;
    await vault.db.sql`insert into kept_rows values ('backed-up')`;
    writeFileSync(path.join(vault.promptsDir, 'one.yaml'), 'name: one\ntemplate: "a {subject}"\n');
    const backup = await runCli(['backup', '--json'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
    snapshotId = JSON.parse(backup.stdout).snapshotId;
  }, 120_000);
  afterAll(async () => vault?.close());

  it('after a failed restore: up refuses to serve, writes since are never replaced, --accept-partial keeps them', async () => {
    const scratch = await createTestDatabase({ migrate: false });
    const dir = path.join(vault.dir, 'failed');
    const restore = () =>
      runCli(
        [
          'restore',
          snapshotId,
          '--only',
          'postgres,prompts,objects',
          '--to-database',
          scratch.url,
          '--to-dir',
          dir,
        ],
        vault.env,
      );
    const chunk = (await promptChunks(vault.env, snapshotId))[0]!;
    const original = readFileSync(chunk.file);
    try {
      // The database restores, then the prompts fail on a damaged blob: the restore exits 1, marks left.
      flipStoredByte(chunk);
      const failed = await restore();
      expect(failed.code, failed.stdout).toBe(1);
      expect(await databaseMarked(scratch.url)).toBe(true);
      writeFileSync(chunk.file, original);

      const up = await upOn(vault.env, {
        databaseUrl: scratch.url,
        dir,
        dataDir: path.join(vault.dir, 'failed-data'),
      });
      expect(up.served, 'up served a marked destination').toBe(false);
      expect(up.code).toBe(1);
      expect(up.stderr).toMatch(/restore of snapshot .* did not finish/);
      expect(up.stderr).toContain('--accept-partial');
      const serve = await upOn(
        vault.env,
        { databaseUrl: scratch.url, dir, dataDir: path.join(vault.dir, 'failed-serve') },
        30_000,
        'serve',
      );
      expect(serve.served, 'serve served a marked destination').toBe(false);
      expect(serve.code).toBe(1);
      expect(serve.stderr).toMatch(/did not finish/);

      // Marked, the database refuses writes by default; a client that insists on writing (read write)
      // gets through, and the next plain restore must not erase what it wrote.
      await expect(scratch.sql`insert into kept_rows values ('refused')`).rejects.toThrow(/read-only/);
      await scratch.sql.begin(
        'read write',
        (tx) => tx`insert into kept_rows values ('written-after-the-failure')`,
      );
      const again = await restore();
      expect(again.code).toBe(1);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);
      expect(again.stderr).toMatch(/written to since/);
      const rows = await scratch.sql`select id from kept_rows order by id`;
      expect(rows.map((r) => r.id)).toEqual(['backed-up', 'written-after-the-failure']);

      const accept = await runCli(
        ['restore', '--accept-partial', '--to-database', scratch.url, '--to-dir', dir],
        vault.env,
      );
      expect(accept.code, accept.stderr).toBe(0);
      expect(accept.stdout).toMatch(/Accepted/);
      expect(await databaseMarked(scratch.url)).toBe(false);
      const afterAccept = await restore();
      expect(afterAccept.code).toBe(1);
      expect(afterAccept.stderr).toMatch(/would overwrite live data/);
      expect((await scratch.sql`select count(*)::int as n from kept_rows`)[0]!.n).toBe(2);
    } finally {
      writeFileSync(chunk.file, original);
      await scratch.drop();
    }
  }, 180_000);

  it('an unchanged failed restore is still replaced by a plain rerun', async () => {
    const scratch = await createTestDatabase({ migrate: false });
    const dir = path.join(vault.dir, 'rerun');
    const args = [
      'restore',
      snapshotId,
      '--only',
      'postgres,prompts',
      '--to-database',
      scratch.url,
      '--to-dir',
      dir,
    ];
    const chunk = (await promptChunks(vault.env, snapshotId))[0]!;
    const original = readFileSync(chunk.file);
    try {
      flipStoredByte(chunk);
      expect((await runCli(args, vault.env)).code).toBe(1);
      writeFileSync(chunk.file, original);
      const rerun = await runCli(args, vault.env);
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(existsSync(path.join(dir, 'prompts', 'one.yaml'))).toBe(true);
      expect(await databaseMarked(scratch.url)).toBe(false);
    } finally {
      writeFileSync(chunk.file, original);
      await scratch.drop();
    }
  }, 120_000);

  it('no restore runs into a database the service is connected to, nor while up runs on DATA_DIR', async () => {
    const scratch = await createTestDatabase({ migrate: false });
    const service = postgres(scratch.url, { max: 1, connection: { application_name: 'trendgen worker' } });
    const dir = path.join(vault.dir, 'busy');
    try {
      await service`select 1`;
      const refused = await runCli(
        ['restore', snapshotId, '--only', 'postgres', '--to-database', scratch.url],
        vault.env,
      );
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/service is running on the database/);
      expect(await databaseMarked(scratch.url)).toBe(false);
      await service.end();

      // A live `trendgen up` on this DATA_DIR (its pid file names a live trendgen process).
      const dataDir = vault.env.DATA_DIR!;
      mkdirSync(path.dirname(upPidFile(dataDir)), { recursive: true });
      const fakeUp = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'trendgen', 'up'], {
        stdio: 'ignore',
      });
      await sleep(200);
      writeFileSync(upPidFile(dataDir), String(fakeUp.pid));
      try {
        const own = await runCli(['restore', snapshotId, '--only', 'prompts', '--in-place', '--yes'], {
          ...vault.env,
          PROMPTS_DIR: path.join(dir, 'prompts'),
        });
        expect(own.code).toBe(1);
        expect(own.stderr).toMatch(/trendgen up runs on .* stop it before restoring/);
      } finally {
        fakeUp.kill('SIGKILL');
      }
    } finally {
      await service.end();
      await scratch.drop();
    }
  }, 120_000);

  it('a marked database refuses writes by default, so a killed restore (which fingerprints nothing) is safe too', async () => {
    const scratch = await createTestDatabase();
    try {
      await markDatabase(scratch.url, 'c'.repeat(64));
      const fresh = openDatabase(scratch.url, { max: 1 });
      try {
        await expect(fresh`insert into prompts (name) values ('x')`).rejects.toThrow(/read-only/);
      } finally {
        await fresh.end({ timeout: 1 });
      }
      // Unmarked, new sessions write again.
      await markDatabase(scratch.url, undefined);
      const after = openDatabase(scratch.url, { max: 1 });
      try {
        await after`insert into prompts (name) values ('x')`;
      } finally {
        await after.end();
      }
    } finally {
      await scratch.drop();
    }
  });

  it('a mark tells leftovers from writes made since: files and persistent Redis keys count, expiring keys do not', async () => {
    const dir = path.join(vault.dir, 'marked', 'prompts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'left.yaml'), 'left by a failed restore\n');
    markDir(dir, 'a'.repeat(64), dirFingerprint(dir));
    expect(await dirVerdict(dir)).toBe('leftovers');
    writeFileSync(path.join(dir, 'new.yaml'), 'written since\n');
    expect(await dirVerdict(dir)).toBe('written-since');
    unmarkDir(dir);
    expect(await dirVerdict(dir)).toBe('unmarked');

    const redis = new Redis(vault.redisUrl);
    try {
      await redis.select(5);
      await redis.set('left', '1');
      await markRedis(vault.redisUrl, 'b'.repeat(64), await redisFingerprint(vault.redisUrl));
      expect(await redisVerdict(vault.redisUrl)).toBe('leftovers');
      await redis.set('expiring', '1', 'EX', 60);
      expect(await redisVerdict(vault.redisUrl)).toBe('leftovers');
      await redis.set('written', '1');
      expect(await redisVerdict(vault.redisUrl)).toBe('written-since');
    } finally {
      await redis.flushdb();
      await markRedis(vault.redisUrl, undefined);
      redis.disconnect();
    }
  });
});
