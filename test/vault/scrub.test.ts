import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { waitFor } from '../../src/lib/process.ts';
import { unrepairedObjectDamage } from '../../src/objects/integrity.ts';
import { currentConditions } from '../../src/ops/alerts.ts';
import { runBackup } from '../../src/vault/backup.ts';
import { runScrub, scrubPass } from '../../src/vault/scrub.ts';
import { restoreObjects } from '../../src/vault/sources/objects-restore.ts';
import { openFirstTarget } from '../../src/vault/targets.ts';
import { fakePng } from '../support/api.ts';
import { flipByte } from '../support/files.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('I7: bit rot in the object store is found by the scrub and repaired from the vault', () => {
  let env: VaultEnv;
  let config: Config;
  const images = [fakePng(200_000), fakePng(250_000), fakePng(300_000)];
  let keys: string[];
  const blobFile = (key: string) => path.join(env.objectsDir, ...key.split('/'));
  const store = () => new FileBlobStore(env.objectsDir);
  const deps = () => ({ config, sql: env.db.sql, objects: store(), logger: pino({ level: 'silent' }) });
  const backup = () =>
    runBackup({
      config,
      databaseUrl: env.db.url,
      redisUrl: env.redisUrl,
      objects: store(),
      sql: env.db.sql,
    });

  beforeAll(async () => {
    env = await startVaultEnv('scrub', { BACKUP_PASSWORD: 'scrub test password' });
    config = loadConfig(env.env, { dotEnv: false });
    keys = [];
    for (const image of images) {
      keys.push((await env.objects.put(Readable.from([image]), { kind: 'example', maxBytes: 1e7 })).key);
    }
    await backup();
  });
  afterAll(async () => env?.close());

  it('a flipped byte is found within the configured period and repaired from the newest snapshot', async () => {
    flipByte(blobFile(keys[1]!));
    const bytesPerSecond = 1024 * 1024;
    const total = images.reduce((sum, image) => sum + image.length, 0);
    const periodMs = (total / bytesPerSecond) * 1000;
    const stop = new AbortController();
    const started = Date.now();
    const running = runScrub(deps(), { bytesPerSecond, pauseMs: 0, signal: stop.signal });
    try {
      await waitFor(
        'the scrub to repair the object',
        async () => (sha256(readFileSync(blobFile(keys[1]!))) === sha256(images[1]!) ? true : undefined),
        periodMs + 10_000,
        50,
      );
    } finally {
      stop.abort();
      await running;
    }
    const tookMs = Date.now() - started;
    console.log(
      `scrub: damage found and repaired after ${tookMs} ms; one pass takes ${Math.round(periodMs)} ms`,
    );
    // Within one pass at the configured rate (plus the repair itself).
    expect(tookMs).toBeLessThan(periodMs + 3000);
    const [row] = await env.db.sql`select found_by, repaired_by from object_damage where key = ${keys[1]!}`;
    expect(row).toMatchObject({ found_by: 'scrub', repaired_by: 'vault' });
    expect(await unrepairedObjectDamage(env.db.sql)).toEqual([]);
  });

  it('damage no backup holds is reported and alerted, and the next backup never stores it as good', async () => {
    const fresh = fakePng(220_000);
    const key = (await env.objects.put(Readable.from([fresh]), { kind: 'example', maxBytes: 1e7 })).key;
    flipByte(blobFile(key));
    const report = await scrubPass(deps(), { bytesPerSecond: 50 * 1024 * 1024 });
    expect(report.damaged).toEqual([key]);
    expect(report.repaired).toEqual([]);
    expect((await currentConditions(env.db.sql, config)).map((c) => c.key)).toContain(
      `object-damaged:${key}`,
    );

    const result = await backup();
    expect(result.stats.objects).toMatchObject({ damaged: 1 });
    // The snapshot restores every good object and holds no wrong bytes for the damaged one.
    const { repo } = await openFirstTarget(config);
    const snapshot = await repo.loadSnapshot(result.snapshotId!);
    const target = new FileBlobStore(path.join(env.dir, 'restored'));
    const restored = await restoreObjects(repo, snapshot.trees.objects!, target);
    expect(restored.damaged).toEqual([]);
    expect(restored.written).toBe(images.length);
    expect(await target.head(key)).toBeUndefined();
  });
});
