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

  describe('Redis through Sentinels and over TLS', () => {
    const ca = () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'trendgen-config-'));
      writeFileSync(
        path.join(dir, 'ca.pem'),
        '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      );
      writeFileSync(
        path.join(dir, 'key.pem'),
        '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n',
      );
      return dir;
    };

    it('folds REDIS_SENTINELS, the master, its password and REDIS_TLS_CA into one connection string', () => {
      const dir = ca();
      const config = load(
        {
          REDIS_URL: 'rediss://:master%2Fpw@/2',
          REDIS_SENTINELS: 's1:26380, s2 ,[::1]:5000',
          REDIS_SENTINEL_MASTER: 'cache',
          REDIS_SENTINEL_PASSWORD: 'sentinel pw',
          REDIS_TLS_CA: 'ca.pem',
        },
        dir,
      );
      expect(config.redisUrl).toBe(
        `rediss+sentinel://:master%2Fpw@s1:26380,s2:26379,[::1]:5000/cache/2?tls_ca=${encodeURIComponent(path.join(dir, 'ca.pem'))}&sentinel_password=sentinel+pw`,
      );
      // `up` hands its children the string as REDIS_URL beside the same variables: they read the same thing.
      const child = load(
        {
          REDIS_URL: config.redisUrl!,
          REDIS_SENTINELS: 's1:26380, s2 ,[::1]:5000',
          REDIS_SENTINEL_PASSWORD: 'sentinel pw',
          REDIS_TLS_CA: 'ca.pem',
        },
        dir,
      );
      expect(child.redisUrl).toBe(config.redisUrl);
      const described = describeConfig(config);
      expect(described.REDIS_SENTINEL_PASSWORD).toBe('********');
      expect(described.REDIS_URL).toBe('rediss://:********@/2');
      expect(described.REDIS_SENTINEL_MASTER).toBe('cache');
      expect(JSON.stringify(described)).not.toMatch(/sentinel pw|sentinel\+pw|master%2Fpw/);
    });

    it('needs no REDIS_URL with Sentinels, and defaults the master to mymaster', () => {
      expect(load({ REDIS_SENTINELS: 'a,b,c' }).redisUrl).toBe(
        'redis+sentinel://a:26379,b:26379,c:26379/mymaster/0',
      );
      expect(describeConfig(load({ REDIS_SENTINELS: 'a' })).REDIS_URL).toBe(
        '(unset: the master named by REDIS_SENTINELS)',
      );
    });

    it.each([
      [{ REDIS_SENTINELS: 'a:70000' }, /^REDIS_SENTINELS must be a comma-separated list of host:port/],
      [{ REDIS_SENTINEL_MASTER: 'my master' }, /^REDIS_SENTINEL_MASTER must be a Sentinel master name/],
      [{ REDIS_URL: 'redis://:pw@h1,h2/0' }, /^REDIS_URL .* list Sentinels in REDIS_SENTINELS instead/],
      [{ REDIS_URL: 'http://h/0' }, /^REDIS_URL must be a URL starting with redis:\/\/ or rediss:\/\//],
      [{ REDIS_URL: 'redis://h/zero' }, /^REDIS_URL .*its path must be a database number/],
      [
        { REDIS_URL: 'redis://h/0', REDIS_TLS_CA: 'ca.pem' },
        /^REDIS_TLS_CA needs TLS, but REDIS_URL starts with redis:\/\//,
      ],
      [{ REDIS_TLS_CA: 'ca.pem' }, /^REDIS_TLS_CA is set, but neither REDIS_URL nor REDIS_SENTINELS is/],
      [
        { REDIS_URL: 'rediss://h/0', REDIS_TLS_CA: 'missing.pem' },
        /^REDIS_TLS_CA names .*missing\.pem, which cannot be read \(ENOENT\)\.$/,
      ],
      [
        { REDIS_URL: 'rediss://h/0', REDIS_TLS_CA: 'key.pem' },
        /^REDIS_TLS_CA names .*key\.pem, which holds no PEM certificate/,
      ],
    ])('refuses a wrong Redis setting in one sentence naming it: %j', (env, message) => {
      const dir = ca();
      expect(() => load(env, dir)).toThrow(ConfigError);
      expect(() => load(env, dir)).toThrow(message);
    });
  });
});
