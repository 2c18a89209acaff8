import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { describeConfig } from '../../src/config/describe.ts';
import { openDatabase } from '../../src/db/connection.ts';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { maskUrl } from '../../src/lib/connection-url.ts';
import { freePort, sleep, waitFor } from '../../src/lib/process.ts';
import { libpqConnection } from '../../src/vault/sources/postgres-client.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, type TestDatabase, testRedisUrl } from '../support/database.ts';
import { CLI } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

// Every credential below is made of pieces that cannot occur by chance in a log line (no hex-only words), so
// finding any piece anywhere is a leak.
const DB_PASSWORD = 'Kx7Vq/Mw3@Zr8 Tn5?Hb2#Jy4%Gp6';
const DB_PIECES = ['Kx7Vq', 'Mw3', 'Zr8', 'Tn5', 'Hb2', 'Jy4', 'Gp6'];
const SECRETS = {
  ADMIN_TOKEN: `AdmTokQ${randomBytes(12).toString('hex')}`,
  API_TOKEN: `CliTokQ${randomBytes(12).toString('hex')}`,
  OPENAI_API_KEY: 'sk-OaiKeyQsecret',
  AWS_SECRET_ACCESS_KEY: 'AwsSecretQkey/with+slash',
  ALERT_WEBHOOK_URL: 'http://hook:HookPwQ@127.0.0.1:9/x?token=HookTokQ',
  OPENAI_BASE_URL: 'https://oai:OaiPwQ@api.example.test/v1?api-key=OaiParamQ',
  S3_ENDPOINT: 'http://s3u:S3PwQ@127.0.0.1:9000',
  BACKUP_OFFSITE_TARGETS: 'far=s3://AKIAFAR:OffsitePwQ%2Fx@offsite-far?endpoint=http://127.0.0.1:9',
};
const QUERY_SECRETS = ['QueryTokQ', 'QueryPwQ', 'QueryKeyQ'];
const FRAGMENTS = [
  ...DB_PIECES,
  encodeURIComponent(DB_PASSWORD),
  SECRETS.ADMIN_TOKEN,
  SECRETS.API_TOKEN,
  'OaiKeyQ',
  'AwsSecretQ',
  'HookPwQ',
  'HookTokQ',
  'OaiPwQ',
  'OaiParamQ',
  'S3PwQ',
  'OffsitePwQ',
  ...QUERY_SECRETS,
];

function leaks(text: string): string[] {
  return FRAGMENTS.filter((fragment) => text.includes(fragment));
}

describe('secrets in URLs: masked in config output, start-up errors, logs and bodies', () => {
  it('masks every credential form in a URL', () => {
    const cases: Array<[string, string]> = [
      ['postgres://u:p%2Fa%40s%20s@h:5432/db', 'postgres://u:********@h:5432/db'],
      ['postgres://u:pa ss@h/db', 'postgres://u:********@h/db'],
      ['postgres://u:p@ss@h/db', 'postgres://u:********@h/db'],
      ['postgres://u:pa/ss@h/db', 'postgres://u:********@h/db'],
      ['postgres://h/db?password=secret&sslmode=require', 'postgres://:********@h/db?sslmode=require'],
      [
        'postgres://u:secret@h1:5432,h2:5432/db?target_session_attrs=primary',
        'postgres://u:********@h1:5432,h2:5432/db?target_session_attrs=primary',
      ],
      ['redis://:secret@h:6379/0', 'redis://:********@h:6379/0'],
      ['https://api.example/v1?api-key=secret&x=1', 'https://api.example/v1?api-key=********&x=1'],
    ];
    for (const [url, masked] of cases) expect(maskUrl(url), url).toBe(masked);
  });

  it('accepts the multi-host failover URL the README documents, and masks it', () => {
    const url = 'postgres://u@host1:5432,host2:5432/trends?target_session_attrs=primary';
    const config = loadConfig({ DATABASE_URL: url }, { dotEnv: false });
    expect(config.databaseUrl).toBe(url);
    const withPassword = loadConfig(
      {
        DATABASE_URL: `postgres://u:${encodeURIComponent(DB_PASSWORD)}@host1:5432,host2:5432/trends?target_session_attrs=primary`,
      },
      { dotEnv: false },
    );
    expect(describeConfig(withPassword).DATABASE_URL).toBe(
      'postgres://u:********@host1:5432,host2:5432/trends?target_session_attrs=primary',
    );
    // libpq programs (pg_dump, pg_restore, psql) get the same hosts, the password only in their environment.
    const conn = libpqConnection(withPassword.databaseUrl!);
    expect(conn.dbname).toBe('postgresql://u@host1:5432,host2:5432/trends?target_session_attrs=primary');
    expect(conn.env.PGPASSWORD).toBe(DB_PASSWORD);
  });

  it('a malformed URL is refused in one sentence that quotes no part of its password', () => {
    for (const value of [
      `postgres://u:${DB_PASSWORD}@h:5432/db`,
      'postgres://u:Kx7Vq/Mw3@h:notaport/db',
      'postgres://u:Kx7Vq%zz@h/db',
    ]) {
      try {
        loadConfig({ DATABASE_URL: value }, { dotEnv: false });
        expect.unreachable(value);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        const message = (error as Error).message;
        expect(message).toMatch(/^DATABASE_URL must be a URL starting with postgres:\/\//);
        expect(leaks(message), message).toEqual([]);
      }
    }
  });

  describe('a real failover URL and a run of `trendgen serve` with tricky credentials', () => {
    const temp = tempDir('secrets');
    let db: TestDatabase;
    let role: string;
    let databaseUrl: string;
    beforeAll(async () => {
      db = await createTestDatabase({ migrate: false });
      role = `tricky_${randomBytes(4).toString('hex')}`;
      const name = new URL(db.url).pathname.slice(1);
      const admin = openDatabase(inject('postgresAdminUrl'), { max: 1 });
      await admin.unsafe(`create role ${role} login password '${DB_PASSWORD}'`);
      await admin.unsafe(`alter database ${name} owner to ${role}`);
      await admin.end();
      const port = new URL(db.url).port;
      // The first host refuses connections: the client must go on to the second, the primary.
      const dead = await freePort();
      databaseUrl = `postgres://${role}:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:${dead},127.0.0.1:${port}/${name}?target_session_attrs=primary`;
    });
    afterAll(async () => {
      await db?.drop();
      const admin = openDatabase(inject('postgresAdminUrl'), { max: 1 });
      await admin.unsafe(`drop role if exists ${role}`).catch(() => {});
      await admin.end();
      temp.remove();
    });

    it('postgres.js and pg_dump both reach the primary through the host list', async () => {
      const sql = openDatabase(databaseUrl, { max: 1 });
      try {
        expect((await sql`select current_user as who`)[0]!.who).toBe(role);
      } finally {
        await sql.end();
      }
      const conn = libpqConnection(databaseUrl);
      const pgDump = findPostgresBinary('pg_dump');
      const out = execFileSync(pgDump, ['--schema-only', '--dbname', conn.dbname], {
        env: conn.env,
        encoding: 'utf8',
      });
      expect(out).toContain('PostgreSQL database dump');
    });

    it('no log line, error body or config output carries any piece of a credential', async () => {
      const port = await freePort();
      const env = {
        ...SECRETS,
        DATABASE_URL: databaseUrl,
        REDIS_URL: testRedisUrl(),
        DATA_DIR: path.join(temp.dir, 'data'),
        PROMPTS_DIR: path.join(temp.dir, 'prompts'),
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'debug',
      };
      const config = await runCli(['config'], env);
      const configJson = await runCli(['config', '--json'], env);
      expect(config.code).toBe(0);
      expect(config.stdout).toContain('127.0.0.1:');

      const serve = spawn(process.execPath, [CLI, 'serve'], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let logs = '';
      serve.stdout.on('data', (chunk) => (logs += chunk));
      serve.stderr.on('data', (chunk) => (logs += chunk));
      const base = `http://127.0.0.1:${port}`;
      const bodies: string[] = [];
      try {
        await waitFor(
          'serve to answer',
          async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok || undefined,
          60_000,
        );
        const admin = { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` };
        const calls: Array<[string, Record<string, string>, number]> = [
          [`/nowhere?token=${QUERY_SECRETS[0]}`, {}, 404],
          [`/api/v1/prompts?password=${QUERY_SECRETS[1]}`, admin, 200],
          [`/api/v1/prompts?api_key=${QUERY_SECRETS[2]}`, { authorization: 'Bearer wrong-token-value' }, 401],
          [`/api/v1/prompts/x?format=${QUERY_SECRETS[0]}`, admin, 400],
        ];
        for (const [url, headers, status] of calls) {
          const response = await fetch(`${base}${url}`, { headers });
          bodies.push(await response.text());
          expect(response.status, url).toBe(status);
        }
        // Only the RFC's space after "Bearer": a non-breaking space is not whitespace there.
        const nbsp = await rawGet(port, '/api/v1/prompts', `Bearer\u00a0${SECRETS.ADMIN_TOKEN}`);
        expect(nbsp.status).toBe(401);
        bodies.push(nbsp.body);
      } finally {
        serve.kill('SIGTERM');
        await new Promise((resolve) => serve.once('exit', resolve));
      }
      await sleep(100);
      expect(logs).toContain('incoming request');
      const everything = [config.stdout, config.stderr, configJson.stdout, logs, ...bodies].join('\n');
      expect(leaks(everything), everything.slice(-3000)).toEqual([]);

      // Start-up errors: a malformed URL, and a server that cannot be reached.
      const malformed = await runCli(['config'], {
        ...env,
        DATABASE_URL: `postgres://${role}:${DB_PASSWORD}@127.0.0.1:1/x`,
      });
      expect(malformed.code).toBe(1);
      const unreachable = await runCli(['migrate'], {
        ...env,
        DATABASE_URL: `postgres://${role}:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:${await freePort()}/x`,
      });
      expect(unreachable.code).toBe(1);
      const errors = [malformed.stderr, malformed.stdout, unreachable.stderr, unreachable.stdout].join('\n');
      expect(leaks(errors), errors).toEqual([]);

      // The doctor reaches for the offsite target of BACKUP_OFFSITE_TARGETS (nothing listens there) and says so.
      const doctor = await runCli(['doctor', '--json'], { ...env, BACKUP_PASSWORD: 'doctor password' });
      const far = JSON.parse(doctor.stdout).checks.find(
        (c: { id: string }) => c.id === 'backup.far.repository',
      );
      expect(far).toMatchObject({ status: 'FAIL' });
      expect(far.message).toContain('s3://offsite-far');
      expect(leaks(doctor.stdout + doctor.stderr), doctor.stdout).toEqual([]);
    }, 120_000);
  });
});

/** A GET with a header value fetch() would refuse to send as is. */
function rawGet(port: number, url: string, authorization: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, headers: { authorization } }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
