import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { recordStreamTargetHealth, registerStreamTargets } from '../../src/objects/stream-queue.ts';
import { runDoctor } from '../../src/ops/doctor/index.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { fakePng } from '../support/api.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

describe("the objects' recovery point in doctor and /metrics", () => {
  let vault: VaultEnv | undefined;
  afterAll(async () => vault?.close());

  it('I10, I11: WARN past 5 s of lag, FAIL past 60 s or while the target fails; the lag gauge per target', async () => {
    vault = await startVaultEnv('stream-lag');
    const { db } = vault;
    const config = loadConfig(vault.env, { dotEnv: false });
    const check = async () => (await runDoctor(config)).checks.find((c) => c.id === 'stream.objects.local')!;
    const gauge = async () => {
      const text = await createMetrics(db.sql, config).registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith('trendgen_recovery_point_lag_seconds{'));
      return line ? { line, value: Number(line.split(' ').at(-1)) } : undefined;
    };

    expect((await check()).status).toBe('WARN');
    expect(await gauge()).toBeUndefined();

    await registerStreamTargets(db.sql, ['local']);
    expect((await check()).status).toBe('OK');
    const object = await vault.objects.put(Readable.from([fakePng(3000)]), { kind: 'photo', maxBytes: 1e9 });
    // An object queued 10 s ago and still not held: the recovery point is 10 s old.
    await db.sql`update object_stream_queue set enqueued_at = clock_timestamp() - interval '10 seconds' where key = ${object.key}`;
    const lagging = await check();
    expect(lagging.status, lagging.message).toBe('WARN');
    expect(lagging.message).toMatch(/1 pending/);
    const metric = (await gauge())!;
    expect(metric.line).toContain('source="objects"');
    expect(metric.line).toContain('target="local"');
    expect(metric.value).toBeGreaterThanOrEqual(10);
    expect(metric.value).toBeLessThan(15);

    await db.sql`update object_stream_queue set enqueued_at = clock_timestamp() - interval '2 minutes' where key = ${object.key}`;
    expect((await check()).status).toBe('FAIL');

    await db.sql`update object_stream_queue set enqueued_at = clock_timestamp() where key = ${object.key}`;
    await recordStreamTargetHealth(db.sql, 'local', 'The disk is full.');
    const failing = await check();
    expect(failing.status).toBe('FAIL');
    expect(failing.message).toContain('(The disk is full)');
  }, 120_000);
});
