import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { offsiteEnv, startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

interface Listed {
  snapshots: Array<{ id: string; status: string; problem?: string; targets: string[] }>;
}

/** `restore latest` of the prompts into a fresh folder, with extra flags. */
const restoreLatest = (vault: VaultEnv, to: string, ...flags: string[]) =>
  runCli(
    ['restore', 'latest', '--only', 'prompts', '--to-dir', path.join(vault.dir, to), ...flags],
    vault.env,
  );

describe('restore latest means the newest snapshot (issue 15, item 4)', () => {
  let vault: VaultEnv;
  let older: string;
  let newest: string;
  const recordOf = (id: string) => path.join(vault.env.BACKUP_DIR!, 'snapshots', id);

  beforeAll(async () => {
    vault = await startVaultEnv('latest', { BACKUP_PASSWORD: 'a password for latest' });
    writeFileSync(path.join(vault.promptsDir, 'first.yaml'), 'name: first\ntemplate: "one {subject}"\n');
    const one = await runCli(['backup', '--json'], vault.env);
    expect(one.code, one.stderr).toBe(0);
    older = JSON.parse(one.stdout).snapshotId;
    writeFileSync(path.join(vault.promptsDir, 'second.yaml'), 'name: second\ntemplate: "two {subject}"\n');
    const two = await runCli(['backup', '--json'], vault.env);
    expect(two.code, two.stderr).toBe(0);
    newest = JSON.parse(two.stdout).snapshotId;
  }, 120_000);
  afterAll(async () => vault?.close());

  it('a damaged newest record stops restore latest with one sentence naming it; --accept-older goes on', async () => {
    const original = readFileSync(recordOf(newest));
    const damaged = Buffer.from(original);
    damaged[damaged.length - 3]! ^= 0x40;
    writeFileSync(recordOf(newest), damaged);
    try {
      const listed = JSON.parse((await runCli(['snapshots', '--json'], vault.env)).stdout) as Listed;
      expect(listed.snapshots.find((s) => s.id === newest)).toMatchObject({ status: 'damaged' });
      expect(listed.snapshots.find((s) => s.id === older)).toMatchObject({ status: 'ok' });
      const human = await runCli(['snapshots'], vault.env);
      expect(human.stdout).toMatch(new RegExp(`${newest.slice(0, 12)}\\s+DAMAGED`));

      const stopped = await restoreLatest(vault, 'stopped');
      expect(stopped.code).toBe(1);
      expect(stopped.stderr.trim().split('\n')).toHaveLength(1);
      expect(stopped.stderr).toContain(newest.slice(0, 12));
      expect(stopped.stderr).toMatch(/damaged/);
      expect(stopped.stderr).toContain('--accept-older');
      expect(existsSync(path.join(vault.dir, 'stopped', 'prompts'))).toBe(false);

      const accepted = await restoreLatest(vault, 'accepted', '--accept-older', '--json');
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(JSON.parse(accepted.stdout).snapshot.id).toBe(older);
      expect(existsSync(path.join(vault.dir, 'accepted', 'prompts', 'first.yaml'))).toBe(true);
      expect(existsSync(path.join(vault.dir, 'accepted', 'prompts', 'second.yaml'))).toBe(false);
    } finally {
      writeFileSync(recordOf(newest), original);
    }
  }, 120_000);

  it('a deleted newest record, known from the backup catalog, stops restore latest too', async () => {
    const aside = path.join(vault.dir, 'record-aside');
    renameSync(recordOf(newest), aside);
    try {
      const stopped = await restoreLatest(vault, 'stopped-deleted');
      expect(stopped.code).toBe(1);
      expect(stopped.stderr.trim().split('\n')).toHaveLength(1);
      expect(stopped.stderr).toContain(newest.slice(0, 12));
      expect(stopped.stderr).toMatch(/missing .*backup catalog|backup catalog.*missing/);
      const accepted = await restoreLatest(vault, 'accepted-deleted', '--accept-older', '--json');
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(JSON.parse(accepted.stdout).snapshot.id).toBe(older);
    } finally {
      renameSync(aside, recordOf(newest));
    }
    const restored = await restoreLatest(vault, 'whole', '--json');
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout).snapshot.id).toBe(newest);
  }, 120_000);
});

describe('restore latest asks the other targets too (issue 15, item 4)', () => {
  let s3: S3Server;
  let vault: VaultEnv;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['offsite'] });
    vault = await startVaultEnv(
      'latest-targets',
      offsiteEnv(s3, 's3://offsite/trendgen', 'offsite password'),
    );
  }, 60_000);
  afterAll(async () => {
    await vault?.close();
    await s3?.stop();
  });

  it('a newest snapshot gone from the local target but on s3 stops the restore and says --target s3', async () => {
    writeFileSync(path.join(vault.promptsDir, 'first.yaml'), 'name: first\ntemplate: "one {subject}"\n');
    const one = await runCli(['backup', '--json'], vault.env);
    expect(one.code, one.stderr).toBe(0);
    const two = await runCli(['backup', '--json'], vault.env);
    expect(two.code, two.stderr).toBe(0);
    const newest = JSON.parse(two.stdout).snapshotId as string;
    renameSync(
      path.join(vault.env.BACKUP_DIR!, 'snapshots', newest),
      path.join(vault.dir, 'newest-record-aside'),
    );
    const stopped = await restoreLatest(vault, 'stopped');
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain(newest.slice(0, 12));
    expect(stopped.stderr).toMatch(/per target s3.*--target s3/);
    // Named, the s3 target restores its own newest, which is the newest.
    const fromS3 = await restoreLatest(vault, 'from-s3', '--target', 's3', '--json');
    expect(fromS3.code, fromS3.stderr).toBe(0);
    expect(JSON.parse(fromS3.stdout).snapshot.id).toBe(newest);
  }, 180_000);
});
