import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { doctorCommand } from '../../src/cli/doctor.ts';
import { loadConfig } from '../../src/config/config.ts';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { freePort } from '../../src/lib/process.ts';
import { type DoctorReport, formatReport, runDoctor } from '../../src/ops/doctor/index.ts';
import { Repository } from '../../src/vault/repository/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { tempDir } from '../support/temp.ts';

const promptYaml = (name: string) =>
  `name: ${name}\ntitle: A title\nmodel: local\ntemplate: "Turn {subject} into art"\nparameters:\n  size: medium\ntags: [test]\n`;

const find = (report: DoctorReport, id: string) => {
  const check = report.checks.find((c) => c.id === id);
  if (!check) throw new Error(`no check ${id} in ${report.checks.map((c) => c.id).join(', ')}`);
  return check;
};

describe('trendgen doctor (I10: failures are loud)', () => {
  const temp = tempDir('doctor');
  const dirs = {
    data: path.join(temp.dir, 'data'),
    backups: path.join(temp.dir, 'backups'),
    prompts: path.join(temp.dir, 'prompts'),
  };
  const redisServer = new EmbeddedRedis({
    root: path.join(temp.dir, 'redis'),
    port: 0,
    appendfsync: 'everysec',
  });
  let db: TestDatabase;
  let redisUrl: string;
  let env: Record<string, string>;

  const configWith = (overrides: Record<string, string> = {}) =>
    loadConfig({ ...env, ...overrides }, { dotEnv: false, cwd: temp.dir });

  beforeAll(async () => {
    for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dirs.prompts, 'ghibli.yaml'), promptYaml('ghibli'));
    [db, { url: redisUrl }] = await Promise.all([createTestDatabase(), redisServer.start()]);
    env = {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      DATA_DIR: dirs.data,
      BACKUP_DIR: dirs.backups,
      PROMPTS_DIR: dirs.prompts,
      ADMIN_TOKEN: 'a'.repeat(32),
      BACKUP_SCHEDULE: '0 * * * *',
    };
  });
  afterAll(async () => {
    await redisServer.stop();
    await db?.drop();
    temp.remove();
  });
  afterEach(async () => {
    await db.sql`delete from backup_runs`;
  });

  it('reports every check once, each OK, WARN or FAIL, aligned one per line with a summary', async () => {
    const report = await runDoctor(configWith());
    const ids = report.checks.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [
      'postgres.reachable',
      'postgres.fsync',
      'postgres.data_checksums',
      'postgres.synchronous_commit',
      'postgres.wal_level',
      'redis.reachable',
      'redis.aof',
      'redis.appendfsync',
      'backup.local.fresh',
      'backup.local.repository',
      'backup.offsite',
      'backup.key',
      'backup.encryption',
      'backup.same_device',
      'drill.last',
      'disk.data_dir',
      'disk.backup_dir',
      'objects.writable',
      'prompts.dir',
      'prompts.valid',
      'admin.token',
    ]) {
      expect(ids).toContain(id);
    }
    for (const check of report.checks) expect(['OK', 'WARN', 'FAIL']).toContain(check.status);
    expect(find(report, 'postgres.reachable')).toMatchObject({ status: 'OK' });
    expect(find(report, 'postgres.reachable').message).toMatch(/^PostgreSQL \d+(\.\d+)? at 127\.0\.0\.1:\d+/);
    expect(find(report, 'redis.reachable').message).toMatch(/^Redis \d+\.\d+\.\d+ at 127\.0\.0\.1:\d+$/);
    expect(find(report, 'redis.aof')).toMatchObject({ status: 'OK', message: 'AOF is on' });
    expect(find(report, 'redis.appendfsync').status).toBe('OK');
    expect(find(report, 'objects.writable').status).toBe('OK');
    expect(find(report, 'prompts.valid')).toMatchObject({
      status: 'OK',
      message: '1 prompt file(s), all valid',
    });
    expect(find(report, 'admin.token').status).toBe('OK');

    const lines = formatReport(report).trimEnd().split('\n');
    expect(lines).toHaveLength(report.checks.length + 1);
    const messageColumn = lines[0]!.indexOf(report.checks[0]!.message);
    report.checks.forEach((check, i) => {
      expect(lines[i]!.startsWith(`${check.status.padEnd(4)} ${check.id} `)).toBe(true);
      expect(lines[i]!.indexOf(check.message)).toBe(messageColumn);
    });
    expect(lines.at(-1)).toMatch(/^\d+ checks: \d+ OK, \d+ WARN, \d+ FAIL/);
  });

  it('says FAIL for fsync off: the shared test server runs without it on purpose', async () => {
    // test/support/global-setup.ts starts it with fsync, synchronous_commit and full_page_writes off.
    const report = await runDoctor(configWith());
    expect(find(report, 'postgres.fsync')).toMatchObject({ status: 'FAIL' });
    expect(find(report, 'postgres.fsync').message).toMatch(/^fsync is off/);
    expect(find(report, 'postgres.synchronous_commit').status).toBe('WARN');
    expect(find(report, 'postgres.full_page_writes').status).toBe('WARN');
    expect(find(report, 'postgres.data_checksums').status).toBe('OK');
    expect(find(report, 'postgres.wal_level').status).toBe('OK');
    expect(report.ok).toBe(false);
  });

  it('says FAIL when AOF is turned off, and the command exits 1', async () => {
    const admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    const saved = process.exitCode;
    try {
      await admin.config('SET', 'appendonly', 'no');
      const report = await runDoctor(configWith());
      expect(find(report, 'redis.aof')).toMatchObject({ status: 'FAIL' });
      expect(find(report, 'redis.aof').message).toMatch(/^AOF is off/);
      expect(report.ok).toBe(false);
      process.exitCode = undefined;
      const out = await captureStdout(() => runCommand([], env));
      expect(out).toMatch(/^FAIL redis\.aof\s+AOF is off/m);
      expect(process.exitCode).toBe(1);
    } finally {
      process.exitCode = saved;
      await admin.config('SET', 'appendonly', 'yes');
      await admin.quit();
    }
    expect(find(await runDoctor(configWith()), 'redis.aof').status).toBe('OK');
  });

  it('judges each target by its last successful backup against BACKUP_SCHEDULE', async () => {
    const id = 'backup.local.fresh';
    expect(find(await runDoctor(configWith()), id)).toMatchObject({
      status: 'WARN',
      message: 'no backup has run to local yet',
    });

    // Three hours old on an hourly schedule: two slots missed.
    await db.sql`insert into backup_runs (started_at, finished_at, status, snapshot_id, targets)
      values (now() - interval '3 hours', now() - interval '3 hours' + interval '1 minute', 'succeeded',
              'aaaabbbbcccc', ${db.sql.json([{ name: 'local', ok: true }])})`;
    const stale = find(await runDoctor(configWith()), id);
    expect(stale.status).toBe('FAIL');
    expect(stale.message).toMatch(/^stale: last successful backup to local 3 h ago \(snapshot aaaabbbb\)/);
    expect(stale.message).toContain('every 60 min');
    // A daily schedule allows two days.
    expect(find(await runDoctor(configWith({ BACKUP_SCHEDULE: '0 2 * * *' })), id).status).toBe('OK');

    // A recent success is OK; a later failure for the same target turns it into a WARN naming the error.
    await db.sql`insert into backup_runs (started_at, finished_at, status, snapshot_id, targets)
      values (now() - interval '20 minutes', now() - interval '19 minutes', 'succeeded', 'ddddeeee',
              ${db.sql.json([{ name: 'local', ok: true }])})`;
    expect(find(await runDoctor(configWith()), id)).toMatchObject({
      status: 'OK',
      message: 'last successful backup to local 19 min ago (snapshot ddddeeee)',
    });
    await db.sql`insert into backup_runs (started_at, finished_at, status, targets, error)
      values (now() - interval '1 minute', now(), 'failed', '[]', 'pg_dump: connection refused')`;
    const failing = find(await runDoctor(configWith()), id);
    expect(failing.status).toBe('WARN');
    expect(failing.message).toContain('the latest run failed: pg_dump: connection refused');

    const off = find(await runDoctor(configWith({ BACKUP_SCHEDULE: 'off' })), id);
    expect(off.status).toBe('WARN');
    expect(off.message).toContain('BACKUP_SCHEDULE is off');
  });

  it('warns while the key that opens unencrypted backups lives only on the data disk', async () => {
    const keyFile = path.join(dirs.data, 'secrets', 'backup-key');
    expect(find(await runDoctor(configWith()), 'backup.key').status).toBe('OK');
    mkdirSync(path.dirname(keyFile), { recursive: true });
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`);
    try {
      const onDisk = find(await runDoctor(configWith()), 'backup.key');
      expect(onDisk.status).toBe('WARN');
      expect(onDisk.message).toContain(keyFile);
      expect(find(await runDoctor(configWith({ BACKUP_KEY: 'ab'.repeat(32) })), 'backup.key').status).toBe(
        'OK',
      );
      expect(
        find(await runDoctor(configWith({ BACKUP_PASSWORD: 'a long password' })), 'backup.key').status,
      ).toBe('OK');
    } finally {
      rmSync(keyFile);
    }
  });

  it('warns without an offsite target and about backups on the data disk; checks offsite encryption', async () => {
    const report = await runDoctor(configWith());
    expect(find(report, 'backup.offsite').status).toBe('WARN');
    expect(find(report, 'backup.offsite').message).toMatch(
      /BACKUP_S3_URI and BACKUP_OFFSITE_TARGETS are unset/,
    );
    const same = find(report, 'backup.same_device');
    expect(same.status).toBe('WARN');
    expect(same.message).toContain('a dead disk takes the data and its backups together');
    expect(report.checks.some((c) => c.id.startsWith('backup.s3.'))).toBe(false);

    // An unreachable S3 endpoint: refused at once, not after the SDK's retries.
    const s3 = {
      BACKUP_S3_URI: 's3://offsite/trendgen',
      S3_ENDPOINT: 'http://127.0.0.1:9',
      AWS_ACCESS_KEY_ID: 'doctor',
      AWS_SECRET_ACCESS_KEY: 'doctor-secret',
    };
    const refused = await runDoctor(configWith(s3));
    expect(find(refused, 'backup.offsite').status).toBe('OK');
    expect(find(refused, 'backup.encryption')).toMatchObject({ status: 'FAIL' });
    expect(find(refused, 'backup.s3.repository').status).toBe('FAIL');
    expect(find(refused, 'backup.s3.repository').message).toMatch(/unreachable/);
    expect(find(refused, 'backup.s3.fresh').message).toBe('no backup has run to s3 yet');
    const plaintext = await runDoctor(configWith({ ...s3, BACKUP_ALLOW_UNENCRYPTED_OFFSITE: 'true' }));
    expect(find(plaintext, 'backup.encryption').status).toBe('WARN');
    const encrypted = await runDoctor(configWith({ ...s3, BACKUP_PASSWORD: 'correct horse' }));
    expect(find(encrypted, 'backup.encryption').status).toBe('OK');

    // A target of BACKUP_OFFSITE_TARGETS is checked with its own settings, apart from the object store's.
    const far = await runDoctor(
      configWith({ BACKUP_OFFSITE_TARGETS: 'far=s3://k:far-secret@offsite/x?endpoint=http://127.0.0.1:9' }),
    );
    expect(find(far, 'backup.offsite')).toMatchObject({ status: 'OK' });
    expect(find(far, 'backup.offsite').message).toContain('far (s3://offsite/x)');
    expect(find(far, 'backup.far.repository').status).toBe('FAIL');
    expect(find(far, 'backup.far.repository').message).toMatch(
      /s3:\/\/offsite\/x cannot be read: .*unreachable/,
    );
    expect(find(far, 'backup.encryption').message).toMatch(
      /^BACKUP_OFFSITE_TARGETS is set without BACKUP_PASSWORD/,
    );
    expect(JSON.stringify(far)).not.toContain('far-secret');
  });

  it('says FAIL when the repository does not open with BACKUP_PASSWORD', async () => {
    const backups = path.join(temp.dir, 'encrypted-backups');
    await Repository.init(new FileBlobStore(backups), { password: 'the right password' });
    const right = await runDoctor(configWith({ BACKUP_DIR: backups, BACKUP_PASSWORD: 'the right password' }));
    expect(find(right, 'backup.local.repository').status).toBe('OK');
    expect(find(right, 'backup.local.repository').message).toContain('encrypted, 0 snapshot(s)');
    const wrong = await runDoctor(configWith({ BACKUP_DIR: backups, BACKUP_PASSWORD: 'a wrong password' }));
    expect(find(wrong, 'backup.local.repository')).toMatchObject({
      status: 'FAIL',
      message: `The backup password is wrong for the repository at file://${backups}: check BACKUP_PASSWORD.`,
    });
  });

  it('warns about an invalid prompt file, naming it with line and column', async () => {
    const prompts = path.join(temp.dir, 'prompts-broken');
    mkdirSync(prompts);
    writeFileSync(path.join(prompts, 'fine.yaml'), promptYaml('fine'));
    writeFileSync(path.join(prompts, 'broken.yaml'), 'name: broken\ntitle: [unclosed\n');
    writeFileSync(path.join(prompts, 'Bad Name.yaml'), promptYaml('fine'));
    const check = find(await runDoctor(configWith({ PROMPTS_DIR: prompts })), 'prompts.valid');
    expect(check.status).toBe('WARN');
    expect(check.message).toMatch(/^1 of 2 prompt file\(s\) invalid .*: broken\.yaml line \d+, column \d+: /);
    expect(check.message).toContain('Bad Name.yaml');
    const missing = await runDoctor(configWith({ PROMPTS_DIR: path.join(temp.dir, 'nowhere') }));
    expect(find(missing, 'prompts.dir').status).toBe('FAIL');
    expect(find(missing, 'prompts.valid').message).toMatch(/^not checked: /);
  });

  it('says FAIL when the object store cannot be written', async () => {
    // Root ignores permissions, so the store sits under a regular file: no user can create it.
    const file = path.join(temp.dir, 'a-file');
    writeFileSync(file, 'not a folder');
    const report = await runDoctor(configWith({ STORAGE_URL: `file://${file}/objects` }));
    const check = find(report, 'objects.writable');
    expect(check.status).toBe('FAIL');
    expect(check.message).toMatch(new RegExp(`^file://${file}/objects is not writable: `));
    expect(report.ok).toBe(false);
  });

  it('says FAIL at once for a closed Redis port, and "not checked" for what needs Redis', async () => {
    const port = await freePort();
    const started = Date.now();
    const report = await runDoctor(configWith({ REDIS_URL: `redis://127.0.0.1:${port}` }), {
      timeoutMs: 5000,
    });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(find(report, 'redis.reachable')).toMatchObject({ status: 'FAIL' });
    expect(find(report, 'redis.reachable').message).toMatch(
      new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} is unreachable`),
    );
    expect(find(report, 'redis.aof')).toMatchObject({
      status: 'WARN',
      message: 'not checked: Redis is unreachable (see redis.reachable)',
    });
    // The other checks still ran.
    expect(find(report, 'postgres.reachable').status).toBe('OK');
  });

  it('gives up on a server that accepts connections but never answers, within the timeout', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const started = Date.now();
      const report = await runDoctor(
        configWith({ DATABASE_URL: `postgres://trends:x@127.0.0.1:${port}/trends` }),
        { timeoutMs: 1000 },
      );
      expect(Date.now() - started).toBeLessThan(2500);
      expect(find(report, 'postgres.reachable')).toMatchObject({ status: 'FAIL' });
      expect(find(report, 'postgres.reachable').message).toMatch(/gave no answer within 0\.8 s/);
      expect(find(report, 'backup.local.fresh').message).toBe(
        'not checked: PostgreSQL is unreachable (see postgres.reachable)',
      );
      expect(find(report, 'redis.reachable').status).toBe('OK');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('reads the last restore drill from drill_runs', async () => {
    const none = {
      status: 'WARN',
      message: 'no restore drill has run yet: nothing proves that the backups restore',
    };
    expect(find(await runDoctor(configWith()), 'drill.last')).toMatchObject(none);
    await db.sql`insert into drill_runs (started_at, finished_at, status, snapshot_id, target, recovery_seconds)
      values (now() - interval '2 hours', now() - interval '2 hours', 'passed', '0123456789ab', 's3', 12.5)`;
    expect(find(await runDoctor(configWith()), 'drill.last')).toMatchObject({
      status: 'OK',
      message: 'the last restore drill passed (2 h ago, snapshot 01234567 from s3, recovered in 13 s)',
    });
    // Weekly drills, the last one three weeks ago: the proof is stale.
    const later = new Date(Date.now() + 21 * 86400_000);
    expect(find(await runDoctor(configWith(), { now: later }), 'drill.last').status).toBe('WARN');
    await db.sql`insert into drill_runs (started_at, finished_at, status, snapshot_id, reason)
      values (now() - interval '1 hour', now() - interval '1 hour', 'failed', 'fedcba987654', 'blob 3f2a is corrupt')`;
    const failed = find(await runDoctor(configWith()), 'drill.last');
    expect(failed).toMatchObject({
      status: 'FAIL',
      message: 'the latest restore drill (60 min ago, snapshot fedcba98) failed: blob 3f2a is corrupt',
    });
    await db.sql`delete from drill_runs`;
  });

  it('prints { ok, checks } with --json', async () => {
    const saved = process.exitCode;
    try {
      const out = await captureStdout(() => runCommand(['--json'], env));
      const parsed = JSON.parse(out) as { ok: boolean; checks: Array<Record<string, unknown>> };
      expect(Object.keys(parsed).sort()).toEqual(['checks', 'ok']);
      expect(parsed.ok).toBe(false); // fsync is off on the shared test server
      for (const check of parsed.checks) {
        expect(Object.keys(check).every((k) => ['id', 'status', 'message', 'hint'].includes(k))).toBe(true);
        expect(typeof check.id).toBe('string');
        expect(['OK', 'WARN', 'FAIL']).toContain(check.status);
        expect(typeof check.message).toBe('string');
      }
      expect(parsed.checks.find((c) => c.id === 'backup.offsite')).toMatchObject({
        status: 'WARN',
        hint: expect.stringContaining('BACKUP_S3_URI'),
      });
      expect(process.exitCode).toBe(1);
    } finally {
      process.exitCode = saved;
    }
  });
});

/** Runs the command in this process with `vars` as the environment it reads. */
async function runCommand(args: string[], vars: Record<string, string>): Promise<void> {
  const saved = new Map(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    await doctorCommand().parseAsync(args, { from: 'user' });
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function captureStdout(fn: () => Promise<void>): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return out;
}
