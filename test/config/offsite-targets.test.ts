import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { describeConfig } from '../../src/config/describe.ts';
import { scrubText } from '../../src/lib/redact.ts';
import { describeTargets, resolveTargets, TargetError } from '../../src/vault/targets.ts';

const load = (env: Record<string, string>, cwd = '/srv/app') => loadConfig(env, { dotEnv: false, cwd });

// Pieces that cannot occur by chance in a sentence: finding one anywhere is a leak.
const SECRET_A = 'SecA/Qx7+Vw3@Zr';
const SECRET_B = 'SecBQpercent%';
const LIST = [
  `region-a=s3://AKIAREGIONA:${encodeURIComponent(SECRET_A)}@offsite-a/trendgen?endpoint=https://s3.eu-west-1.example.com:9000&region=eu-west-1`,
  `region-b=s3://AKIAREGIONB:${encodeURIComponent(SECRET_B)}@offsite-b?region=us-west-2&path_style=false`,
].join(',\n  ');
const PIECES = ['SecA', 'Qx7', 'Vw3', 'SecBQ'];
const leaks = (text: string) => PIECES.filter((piece) => text.includes(piece));

describe('BACKUP_OFFSITE_TARGETS', () => {
  it('reads each target with its own endpoint, region and credentials, apart from the object store’s', () => {
    const config = load({
      BACKUP_OFFSITE_TARGETS: LIST,
      S3_ENDPOINT: 'http://objects.local:9000',
      AWS_ACCESS_KEY_ID: 'OBJECTS',
      AWS_SECRET_ACCESS_KEY: 'objects-secret',
    });
    const [a, b] = config.backup.offsiteTargets;
    expect(a).toMatchObject({
      name: 'region-a',
      url: 's3://offsite-a/trendgen',
      s3: {
        endpoint: 'https://s3.eu-west-1.example.com:9000',
        region: 'eu-west-1',
        forcePathStyle: true,
        accessKeyId: 'AKIAREGIONA',
        secretAccessKey: SECRET_A,
      },
    });
    expect(b).toMatchObject({
      name: 'region-b',
      url: 's3://offsite-b',
      s3: { endpoint: undefined, region: 'us-west-2', forcePathStyle: false, secretAccessKey: SECRET_B },
    });
    expect(config.s3).toMatchObject({ endpoint: 'http://objects.local:9000', accessKeyId: 'OBJECTS' });
    // Every target, in order: local, then the offsite ones; each reached with its own settings.
    const targets = describeTargets(config);
    expect(targets.map((t) => [t.name, t.offsite])).toEqual([
      ['local', false],
      ['region-a', true],
      ['region-b', true],
    ]);
    expect(targets[1]!.s3.accessKeyId).toBe('AKIAREGIONA');
    expect(targets[0]!.s3.accessKeyId).toBe('OBJECTS');
  });

  it('takes a raw AWS secret (with / and +) as Kubernetes spells it in, and no credentials at all', () => {
    const config = load({
      BACKUP_OFFSITE_TARGETS: `x=s3://AKIA:ab/cd+ef@bucket-x/p/q y=s3://bucket-y`,
    });
    expect(config.backup.offsiteTargets.map((t) => [t.url, t.s3.secretAccessKey])).toEqual([
      ['s3://bucket-x/p/q', 'ab/cd+ef'],
      ['s3://bucket-y', undefined],
    ]);
  });

  it('passes a CA file through, resolved and checked', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'trendgen-offsite-'));
    writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
    const config = load({ BACKUP_OFFSITE_TARGETS: 'x=s3://b-x?endpoint=https://h:9000&ca=ca.pem' }, dir);
    expect(config.backup.offsiteTargets[0]!.s3.caFile).toBe(path.join(dir, 'ca.pem'));
  });

  it.each([
    ['s3://AKIA:SecAQ@bucket', /^BACKUP_OFFSITE_TARGETS entry 1 must start with its name and =/],
    ['a=s3://b-a Region=s3://b-b', /^BACKUP_OFFSITE_TARGETS entry 2 must start with its name and =/],
    ['local=s3://b-a', /^BACKUP_OFFSITE_TARGETS cannot name a target local: that is BACKUP_DIR's target/],
    ['s3=s3://b-a', /^BACKUP_OFFSITE_TARGETS cannot name a target s3: that is BACKUP_S3_URI's target/],
    ['a=s3://b-a a=s3://b-b', /^BACKUP_OFFSITE_TARGETS names the target a twice/],
    ['a=https://SecAQ@bucket', /^BACKUP_OFFSITE_TARGETS target a must be an s3:\/\/ URL/],
    ['a=s3://AKIA:SecA?Q@bucket', /^BACKUP_OFFSITE_TARGETS target a names no valid bucket .*percent-encoded/],
    ['a=s3://AKIA@bucket', /^BACKUP_OFFSITE_TARGETS target a gives its credentials without .* a secret/],
    ['a=s3://AKIA:SecA%zzQ@bucket', /^BACKUP_OFFSITE_TARGETS target a has a malformed percent-encoding/],
    ['a=s3://bucket/.hidden', /^BACKUP_OFFSITE_TARGETS target a has a prefix that is not folders/],
    ['a=s3://bucket?secret=SecAQ', /^BACKUP_OFFSITE_TARGETS target a has an unknown parameter secret:/],
    ['a=s3://bucket?region=x&region=y', /^BACKUP_OFFSITE_TARGETS target a gives the parameter region twice/],
    ['a=s3://bucket?endpoint=ftp://h', /^BACKUP_OFFSITE_TARGETS target a has an endpoint that is not/],
    [
      'a=s3://bucket?endpoint=https://u:SecAQ@h',
      /^BACKUP_OFFSITE_TARGETS target a has an endpoint that is not/,
    ],
    ['a=s3://bucket?region=eu_west', /^BACKUP_OFFSITE_TARGETS target a has a region that is not/],
    ['a=s3://bucket?path_style=yes', /^BACKUP_OFFSITE_TARGETS target a has path_style=yes: it must be/],
    [
      'a=s3://bucket?ca=/nowhere/ca.pem',
      /^BACKUP_OFFSITE_TARGETS target a's ca names \/nowhere\/ca.pem, which cannot be read/,
    ],
    [
      'a=s3://bucket/p b=s3://bucket/p/',
      /^BACKUP_OFFSITE_TARGETS target b is the same bucket and prefix .* target a/,
    ],
  ])('a wrong entry stops start-up with one sentence naming it, quoting no secret: %s', (value, message) => {
    try {
      load({ BACKUP_OFFSITE_TARGETS: value });
      expect.unreachable(value);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const text = (error as Error).message;
      expect(text).toMatch(message);
      expect(text.split(/\.\s/).length, text).toBe(1);
      expect(leaks(text), text).toEqual([]);
    }
  });

  it('refuses the place BACKUP_S3_URI already is at the same endpoint, not another endpoint’s bucket of that name', () => {
    const env = { BACKUP_S3_URI: 's3://offsite/trendgen', S3_ENDPOINT: 'http://minio:9000' };
    expect(() =>
      load({ ...env, BACKUP_OFFSITE_TARGETS: 'b=s3://offsite/trendgen?endpoint=http://minio:9000' }),
    ).toThrow(/target b is the same bucket and prefix at the same endpoint as BACKUP_S3_URI/);
    expect(
      load({ ...env, BACKUP_OFFSITE_TARGETS: 'b=s3://offsite/trendgen?endpoint=http://other:9000' }).backup
        .offsiteTargets,
    ).toHaveLength(1);
  });

  it('masks the secrets in `trendgen config` and teaches them to the log scrubber', () => {
    const config = load({ BACKUP_OFFSITE_TARGETS: LIST });
    const described = describeConfig(config);
    expect(described.BACKUP_OFFSITE_TARGETS).toBe(
      'region-a=s3://AKIAREGIONA:********@offsite-a/trendgen?endpoint=https://s3.eu-west-1.example.com:9000&region=eu-west-1 ' +
        'region-b=s3://AKIAREGIONB:********@offsite-b?region=us-west-2&path_style=false',
    );
    expect(leaks(JSON.stringify(described))).toEqual([]);
    // A driver's error quoting the secret, raw or encoded, is scrubbed before it reaches a log.
    const scrubbed = scrubText(`signature mismatch for ${SECRET_A} (${encodeURIComponent(SECRET_B)})`);
    expect(leaks(scrubbed), scrubbed).toEqual([]);
    expect(load({}).backup.offsiteTargets).toEqual([]);
    expect(describeConfig(load({})).BACKUP_OFFSITE_TARGETS).toBe('(unset)');
  });

  it('is encrypted like BACKUP_S3_URI: refused without BACKUP_PASSWORD unless plaintext is accepted', () => {
    const env = { BACKUP_OFFSITE_TARGETS: 'region-b=s3://offsite-b' };
    expect(() => resolveTargets(load(env))).toThrow(TargetError);
    expect(() => resolveTargets(load(env))).toThrow(
      /^BACKUP_OFFSITE_TARGETS is set but BACKUP_PASSWORD is not: offsite backups are encrypted/,
    );
    expect(resolveTargets(load({ ...env, BACKUP_PASSWORD: 'long enough' })).map((t) => t.name)).toEqual([
      'local',
      'region-b',
    ]);
    const plain = load({ ...env, BACKUP_ALLOW_UNENCRYPTED_OFFSITE: 'true' });
    expect(resolveTargets(plain, ['region-b']).map((t) => t.name)).toEqual(['region-b']);
    expect(() => resolveTargets(plain, ['region-c'])).toThrow(
      'Unknown backup target region-c: configured targets are local, region-b.',
    );
  });
});
