import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/db/connection.ts';
import { sleep } from '../../../src/lib/process.ts';
import { runCli } from '../../support/cli.ts';
import { createTestDatabase } from '../../support/database.ts';
import { killTree } from '../../support/processes.ts';
import { tempDir } from '../../support/temp.ts';

interface Status {
  mode: string;
  receiver: { state: string };
  sources: Array<{ source: string; state: string; error: string }>;
  protectedBy: Array<{ data: string; by: string; how: string }>;
}

// I10 and I11 on a managed PostgreSQL: a role that may not replicate is said so, once, in status and doctor,
// and protect keeps running without retrying a stream that cannot work.
describe('I11 continuous protection on a server that refuses replication', { timeout: 300_000 }, () => {
  const temp = tempDir('managed');
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    temp.remove();
  });

  it('reports "refused" with the reason and names the provider’s point-in-time recovery', async () => {
    const db = await createTestDatabase({ migrate: false });
    cleanups.push(() => db.drop());
    const role = `managed_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    const name = new URL(db.url).pathname.slice(1);
    await db.sql.unsafe(`create role ${role} login password '${password}' nosuperuser noreplication`);
    await db.sql.unsafe(`alter database ${name} owner to ${role}`);
    await db.sql.unsafe(`alter schema public owner to ${role}`);
    cleanups.push(async () => {
      const admin = openDatabase(db.url.replace(/\/[^/?]+(\?|$)/, '/postgres$1'), { max: 1 });
      await admin.unsafe(`drop role if exists ${role}`).finally(() => admin.end());
    });
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    const env = {
      DATABASE_URL: url.toString(),
      REDIS_URL: 'redis://127.0.0.1:1/0',
      DATA_DIR: path.join(temp.dir, 'data'),
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      LOG_LEVEL: 'warn',
    };
    const protect = runCli(['protect'], env);
    cleanups.push(async () => protect.child.pid && killTree(protect.child.pid));
    let status: Status | undefined;
    for (let i = 0; i < 60 && !status?.sources.length; i++) {
      await sleep(500);
      const result = await runCli(['status', '--json'], env);
      status = JSON.parse(result.stdout || 'null') ?? undefined;
    }
    expect(status?.receiver.state).toBe('refused');
    expect(status?.sources[0]?.error).toMatch(/may not open replication connections.*point-in-time recovery/);
    expect(status?.protectedBy.find((p) => p.data === 'postgres')?.by).toBe('provider');
    const doctor = JSON.parse((await runCli(['doctor', '--json'], env)).stdout);
    expect(doctor.checks.find((c: { id: string }) => c.id === 'backup.continuous')).toMatchObject({
      status: 'WARN',
    });
    expect(protect.child.exitCode).toBeNull();
  });

  it('with BACKUP_DATABASE_PITR=cloudnativepg, protect streams the objects only, and status and doctor name CloudNativePG', async () => {
    const db = await createTestDatabase({ migrate: false });
    cleanups.push(() => db.drop());
    const dir = path.join(temp.dir, 'cnpg');
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: 'redis://127.0.0.1:1/0',
      DATA_DIR: path.join(dir, 'data'),
      BACKUP_DIR: path.join(dir, 'backups'),
      PROMPTS_DIR: path.join(dir, 'prompts'),
      BACKUP_DATABASE_PITR: 'cloudnativepg',
      LOG_LEVEL: 'warn',
    };
    const protect = runCli(['protect'], env);
    cleanups.push(async () => protect.child.pid && killTree(protect.child.pid));
    let status: Status | undefined;
    for (let i = 0; i < 60 && !status?.sources.some((s) => s.source === 'objects'); i++) {
      await sleep(500);
      const result = await runCli(['status', '--json'], env);
      status = JSON.parse(result.stdout || 'null') ?? undefined;
    }
    expect(status?.sources.map((s) => s.source)).toEqual(['objects']);
    expect(status?.mode).toBe('off');
    expect(status?.protectedBy.map((p) => [p.data, p.by])).toEqual([
      ['postgres', 'CloudNativePG'],
      ['objects', 'trendgen'],
      ['prompts', 'trendgen'],
      ['redis', 'trendgen'],
    ]);
    // No receiver ran: no replication slot and no WAL stream in the vault.
    const slots = await db.sql`select slot_name from pg_replication_slots where slot_name = 'trendgen_wal'`;
    expect(slots).toHaveLength(0);
    const doctor = JSON.parse((await runCli(['doctor', '--json'], env)).stdout);
    const check = doctor.checks.find((c: { id: string }) => c.id === 'backup.continuous');
    expect(check.status).toBe('OK');
    expect(check.message).toMatch(
      /protected by CloudNativePG.*trendgen protects the objects, prompts and Redis/,
    );
    const text = (await runCli(['status'], env)).stdout;
    expect(text).toMatch(/^postgres +protected by CloudNativePG: its WAL archive/m);
    expect(protect.child.exitCode).toBeNull();
  });
});
