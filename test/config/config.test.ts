import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { describeConfig } from '../../src/config/describe.ts';

const load = (env: Record<string, string>, cwd = '/srv/app') => loadConfig(env, { dotEnv: false, cwd });

describe('config', () => {
  it('has the documented defaults', () => {
    const config = load({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.dataDir).toBe('/srv/app/data');
    expect(config.promptsDir).toBe('/srv/app/prompts');
    expect(config.storageUrl).toBe('file:///srv/app/data/objects');
    expect(config.backup).toMatchObject({ dir: '/srv/app/backups', retentionDays: 14 });
    expect(config.postgres).toMatchObject({ user: 'trends', database: 'trends' });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
  });

  it.each([
    [{ PORT: 'eighty' }, /^PORT must be a whole number/],
    [{ PORT: '70000' }, /^PORT /],
    [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL must be a URL starting with postgres:\/\//],
    [{ STORAGE_URL: 'ftp://x' }, /^STORAGE_URL /],
    [{ MAX_UPLOAD_SIZE: 'lots' }, /^MAX_UPLOAD_SIZE must be a size/],
    [{ ADMIN_TOKEN: 'short' }, /^ADMIN_TOKEN must be at least 16 characters/],
    [{ REDIS_APPENDFSYNC: 'no' }, /^REDIS_APPENDFSYNC /],
  ])('a wrong value stops with one sentence naming the variable: %j', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });

  it('never echoes a secret in an error', () => {
    try {
      load({ ADMIN_TOKEN: 'tiny-secret' });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain('tiny-secret');
    }
  });

  it('parses sizes with units', () => {
    expect(load({ MAX_UPLOAD_SIZE: '5MB' }).limits.maxUploadBytes).toBe(5 * 1024 * 1024);
    expect(load({ MAX_UPLOAD_SIZE: '512KiB' }).limits.maxUploadBytes).toBe(512 * 1024);
    expect(load({ MAX_UPLOAD_SIZE: '1000' }).limits.maxUploadBytes).toBe(1000);
  });

  it('reads .env, and the environment wins over it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'trendgen-config-'));
    writeFileSync(path.join(dir, '.env'), 'PORT=9000\nHOST=0.0.0.0\n# comment\nPROMPTS_DIR=p\n');
    const config = loadConfig({ HOST: '127.0.0.2' }, { cwd: dir });
    expect(config.port).toBe(9000);
    expect(config.host).toBe('127.0.0.2');
    expect(config.promptsDir).toBe(path.join(dir, 'p'));
  });

  it('masks secrets and URL passwords when described', () => {
    const described = describeConfig(
      load({
        ADMIN_TOKEN: 'a'.repeat(32),
        DATABASE_URL: 'postgres://trends:hunter2@db:5432/trends',
        AWS_SECRET_ACCESS_KEY: 'secret-key',
        AWS_ACCESS_KEY_ID: 'AKIA',
      }),
    );
    const text = JSON.stringify(described);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('a'.repeat(32));
    expect(text).not.toContain('secret-key');
    expect(described.DATABASE_URL).toBe('postgres://trends:********@db:5432/trends');
    expect(described.ADMIN_TOKEN).toBe('********');
  });

  it('treats an empty value as unset, as Compose files do', () => {
    expect(load({ DATABASE_URL: '', PORT: '' }).port).toBe(8080);
  });
});
