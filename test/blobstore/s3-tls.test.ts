import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStoreError, createBlobStore, readAll, S3BlobStore } from '../../src/blobstore/index.ts';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { resolveTargets } from '../../src/vault/targets.ts';
import { type S3Server, startS3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';
import { type Certificates, makeCertificates } from '../support/tls.ts';
import { blobStoreContract } from './contract.ts';

// Level 2: an S3-protocol store over HTTPS whose certificate a private CA signed (S3_CA_FILE). The test S3 server
// serves HTTPS itself on certificates made here by openssl.
const BUCKET = 'trendgen-tls';
const temp = tempDir('s3-tls');
let certs: Certificates;
let server: S3Server;
let run = 0;

beforeAll(async () => {
  certs = makeCertificates(path.join(temp.dir, 'certs'));
  server = await startS3Server({ buckets: [BUCKET], tls: certs.server });
});
afterAll(async () => {
  await server?.stop();
  temp.remove();
});

blobStoreContract(
  's3 over https with S3_CA_FILE',
  async () => {
    expect(server.endpoint).toMatch(/^https:\/\//);
    const settings = { ...server.settings, caFile: certs.ca };
    const store = createBlobStore(`s3://${BUCKET}/contract/case-${++run}`, settings);
    return { store, dispose: async () => store.close?.() };
  },
  { nestedOrderGap: '(s3rver walks folders: it lists "a/c" before "a-b" and "x-1" before "x")' },
);

describe('S3 over HTTPS', () => {
  async function failure(settings: Partial<S3Server['settings']>, endpoint = server.endpoint) {
    const store = new S3BlobStore({
      bucket: BUCKET,
      settings: { ...server.settings, endpoint, ...settings },
    });
    const started = Date.now();
    try {
      const error = await store
        .put(`k-${randomBytes(4).toString('hex')}`, Buffer.from('x'))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlobStoreError);
      // Not retried: a certificate does not get better by asking again.
      expect(Date.now() - started).toBeLessThan(5_000);
      return (error as Error).message;
    } finally {
      await store.close();
    }
  }

  it('trusts S3_CA_FILE besides the public CAs, and says so in one sentence when it is not the signer', async () => {
    const store = new S3BlobStore({ bucket: BUCKET, settings: { ...server.settings, caFile: certs.ca } });
    await store.put('hello', Buffer.from('over tls'));
    expect((await readAll(await store.get('hello'))).toString()).toBe('over tls');
    await store.close();

    expect(await failure({})).toBe(
      `The S3 endpoint ${server.endpoint} presented a certificate that no public CA signed (unable to verify the first certificate): set S3_CA_FILE to the file (PEM) of the CA that signed it.`,
    );
    expect(await failure({ caFile: certs.otherCa })).toBe(
      `The S3 endpoint ${server.endpoint} presented a certificate that neither S3_CA_FILE (${certs.otherCa}) nor a public CA signed (unable to verify the first certificate): set S3_CA_FILE to the file (PEM) of the CA that signed it.`,
    );
  });

  it('refuses a certificate issued for another host name, in one sentence', async () => {
    const elsewhere = await startS3Server({ buckets: [BUCKET], tls: certs.elsewhere });
    try {
      expect(await failure({ caFile: certs.ca }, elsewhere.endpoint)).toBe(
        `The S3 endpoint ${elsewhere.endpoint} presented a certificate issued for DNS:db.example.invalid, not for 127.0.0.1: use in S3_ENDPOINT a host name the certificate names, or have it reissued for 127.0.0.1.`,
      );
    } finally {
      await elsewhere.stop();
    }
  });

  it('an offsite target of BACKUP_OFFSITE_TARGETS trusts its own ca=, apart from S3_CA_FILE, and names it when wrong', async () => {
    const entry = (ca: string) =>
      `far=s3://S3RVER:S3RVER@${BUCKET}/far?endpoint=${server.endpoint}&ca=${encodeURIComponent(ca)}`;
    // S3_CA_FILE trusts another CA: the object store's settings are not the target's.
    const env = { S3_CA_FILE: certs.otherCa, BACKUP_PASSWORD: 'far password' };
    const config = loadConfig({ ...env, BACKUP_OFFSITE_TARGETS: entry(certs.ca) }, { dotEnv: false });
    const [far] = resolveTargets(config, ['far']);
    await far!.store.put('hello', Buffer.from('far over tls'));
    expect((await readAll(await far!.store.get('hello'))).toString()).toBe('far over tls');
    await far!.store.close?.();

    const wrong = loadConfig({ ...env, BACKUP_OFFSITE_TARGETS: entry(certs.otherCa) }, { dotEnv: false });
    const [refused] = resolveTargets(wrong, ['far']);
    const error = await refused!.store.put('k', Buffer.from('x')).catch((e: unknown) => e);
    await refused!.store.close?.();
    expect((error as Error).message).toBe(
      `The S3 endpoint ${server.endpoint} presented a certificate that neither the ca of BACKUP_OFFSITE_TARGETS target far (${certs.otherCa}) nor a public CA signed (unable to verify the first certificate): set the ca of BACKUP_OFFSITE_TARGETS target far to the file (PEM) of the CA that signed it.`,
    );
  });

  it('S3_CA_FILE must name a readable file: one sentence at start-up', () => {
    const missing = path.join(temp.dir, 'missing.pem');
    expect(() => loadConfig({ S3_CA_FILE: missing }, { dotEnv: false })).toThrow(ConfigError);
    expect(() => loadConfig({ S3_CA_FILE: missing }, { dotEnv: false })).toThrow(
      `S3_CA_FILE names ${missing}, which cannot be read (ENOENT): give the path of a CA file (PEM).`,
    );
    expect(loadConfig({ S3_CA_FILE: certs.ca }, { dotEnv: false }).s3.caFile).toBe(certs.ca);
  });
});
