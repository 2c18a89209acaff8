import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { deleteUserData } from '../../src/generation/user-data.ts';
import { runDoctor } from '../../src/ops/doctor/index.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { followLedgers, readLedger, syncLocalLedger } from '../../src/vault/ledger.ts';
import { localTarget, openRepository, resolveTargets } from '../../src/vault/targets.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/** The offsite ledger as a restore from that target would read it. */
async function offsiteLedger(config: Config): Promise<string[]> {
  const s3 = resolveTargets(config).find((t) => t.name === 's3')!;
  const { records } = await readLedger(await openRepository(s3, config), new Date(0).toISOString());
  return records.map((r) => r.userId);
}

async function lagMetric(config: Config, vault: VaultEnv): Promise<Record<string, number>> {
  const text = await createMetrics(vault.db.sql, config).registry.metrics();
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^trendgen_deletion_ledger_lag_seconds\{target="(\w+)"\} ([\d.e+-]+)$/gm))
    out[match[1]!] = Number(match[2]);
  return out;
}

/**
 * I3: the offsite deletion ledgers follow from a durable queue. The process that answered a deletion may die
 * right after the local ledger was written: what the offsite target still lacks is known from PostgreSQL,
 * retried until written, and its lag shows in metrics and doctor.
 */
describe('I3: offsite deletion ledgers follow from a durable queue', () => {
  let vault: VaultEnv;
  let s3: S3Server;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let config: Config;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['offsite'] });
    proxy = await startTcpProxy(Number(new URL(s3.endpoint).port));
    vault = await startVaultEnv('ledger-queue', {
      ...offsiteEnv(s3, 's3://offsite/vault', 'ledger queue password'),
      S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
    });
    config = loadConfig(vault.env, { dotEnv: false });
    // Both repositories exist, as after any earlier backup.
    const local = await openRepository(localTarget(config), config, { create: true });
    const s3Target = resolveTargets(config).find((t) => t.name === 's3')!;
    await openRepository(s3Target, config, { create: true, like: local });
  }, 120_000);
  afterAll(async () => {
    await proxy?.close();
    await vault?.close();
    await s3?.stop();
  });

  it('a deletion acknowledged while the offsite target is down is owed to it, visible, and written on its return', async () => {
    proxy.setDown(true);
    // What DELETE /users/{user}/data does before it answers; the process then dies before any offsite write.
    await deleteUserData(vault.db.sql, 'gone-user');
    await syncLocalLedger(config, vault.db.sql);
    await vault.db.sql`update user_deletions set requested_at = now() - interval '2 hours'`;

    const lag = await lagMetric(config, vault);
    expect(lag.local).toBe(0);
    expect(lag.s3).toBeGreaterThan(7000);

    // The scheduler's ledger job while the target is still down: the attempt and its error are recorded.
    const [, s3Debt] = await followLedgers(config, vault.db.sql);
    expect(s3Debt).toMatchObject({ target: 's3', pending: 1, lastError: expect.any(String) });
    const doctor = await runDoctor(config);
    const check = doctor.checks.find((c) => c.id === 'backup.s3.ledger')!;
    expect(check.status).toBe('FAIL');
    expect(check.message).toMatch(
      /1 user-data deletion\(s\) not yet in the ledger on s3, the oldest for 2 h/,
    );
    expect(check.message).toMatch(/the last attempt failed/);
    expect(doctor.checks.find((c) => c.id === 'backup.local.ledger')!.status).toBe('OK');

    proxy.setDown(false);
    const debts = await followLedgers(config, vault.db.sql);
    expect(debts.map((d) => [d.target, d.pending])).toEqual([
      ['local', 0],
      ['s3', 0],
    ]);
    expect(await offsiteLedger(config)).toEqual(['gone-user']);
    expect((await lagMetric(config, vault)).s3).toBe(0);
    const after = await runDoctor(config);
    expect(after.checks.find((c) => c.id === 'backup.s3.ledger')!.status).toBe('OK');
  }, 180_000);
});
