import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase } from '../../src/db/connection.ts';
import { embeddedPostgres, embeddedRedis } from '../../src/embedded/connect.ts';
import { waitFor } from '../../src/lib/process.ts';
import { tableFacts } from '../../src/vault/sources/postgres-facts.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { generationForm, samplePhoto } from '../support/generation.ts';
import { CLI, startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function walkFiles(dir: string, base = dir): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) for (const [k, v] of walkFiles(full, base)) out.set(k, v);
    else out.set(path.relative(base, full), createHash('sha256').update(readFileSync(full)).digest('hex'));
  }
  return out;
}

describe('disaster round trip: back up, lose the machine, restore latest', () => {
  const temp = tempDir('disaster');
  const env = {
    DATA_DIR: path.join(temp.dir, 'data'),
    PROMPTS_DIR: path.join(temp.dir, 'prompts'),
    BACKUP_DIR: path.join(temp.dir, 'backups'),
    BACKUP_PASSWORD: 'correct horse battery staple',
    GENERATION_LEASE_SECONDS: '5',
  };
  // No ADMIN_TOKEN: `up` generates one into DATA_DIR/secrets, which the snapshot must carry (clients keep it).
  const tokenFile = path.join(env.DATA_DIR, 'secrets', 'admin-token');
  const auth = { authorization: '' };
  let up: UpProcess | undefined;
  afterAll(async () => {
    await up?.stop();
    temp.remove();
  });

  async function fingerprint() {
    const config = loadConfig(env, { dotEnv: false });
    const pg = embeddedPostgres(config).findRunning()!;
    const tables = await tableFacts(pg.url);
    // Operational records that change by themselves: the backup's own catalog row is finished after its dump
    // was taken, and the scheduler writes a fresh doctor report whenever it starts.
    delete tables['public.backup_runs'];
    delete tables['public.doctor_reports'];
    // A restore records itself for the object collector (I3).
    delete tables['public.object_store_restores'];
    const redisInfo = (await embeddedRedis(config).findRunning())!;
    const redis = new Redis(redisInfo.url);
    const keys: Record<string, { value: string | null; ttl: number }> = {};
    for (const key of await redis.keys('disaster:*'))
      keys[key] = { value: await redis.get(key), ttl: await redis.pttl(key) };
    redis.disconnect();
    return {
      tables,
      keys,
      objects: walkFiles(path.join(env.DATA_DIR, 'objects')),
      prompts: walkFiles(env.PROMPTS_DIR),
    };
  }

  it('I8: every object, table, prompt (with history), Redis key and the generated admin token comes back', async () => {
    up = await startUp(env);
    const token = readFileSync(tokenFile, 'utf8').trim();
    auth.authorization = `Bearer ${token}`;
    const base = up.baseUrl;
    for (const [i, template] of ['First {subject}', 'Second {subject}', 'Third {subject}'].entries()) {
      const put = await fetch(`${base}/api/v1/prompts/ghibli`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/yaml' },
        body: SAMPLE_PROMPT('ghibli', template)
          .replace('model: gpt-image-1', 'model: local')
          .replace('size: medium', 'size: small'),
      });
      expect(put.status).toBe(i === 0 ? 201 : 200);
    }
    await fetch(`${base}/api/v1/trends`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ slug: 'ghibli', title: 'Ghibli', prompt: 'ghibli' }),
    });
    await fetch(`${base}/api/v1/trends/ghibli/example`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'image/jpeg' },
      body: await samplePhoto(9, 200),
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const form = generationForm(
        { trend: 'ghibli', user: `user-${i}`, variants: '2' },
        await samplePhoto(i + 20, 80),
      );
      const response = await fetch(`${base}/api/v1/generations`, {
        method: 'POST',
        headers: { ...auth, 'content-type': form.contentType },
        body: form.payload,
      });
      expect(response.status).toBe(202);
      ids.push(((await response.json()) as { id: string }).id);
    }
    await waitFor(
      'generations to finish',
      async () => {
        for (const id of ids) {
          const g = (await (await fetch(`${base}/api/v1/generations/${id}`, { headers: auth })).json()) as {
            status: string;
          };
          if (g.status !== 'succeeded') return undefined;
        }
        return true;
      },
      120_000,
      300,
    );
    const config = loadConfig(env, { dotEnv: false });
    const redis = new Redis((await embeddedRedis(config).findRunning())!.url);
    await redis.set('disaster:plain', 'kept');
    await redis.set('disaster:ttl', 'expires later', 'PX', 3_600_000);
    redis.disconnect();

    const backup = await runCli(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const before = await fingerprint();
    await up.stop();
    up = undefined;

    // The disaster: the data folder and the prompts are gone; only the backup target remains.
    rmSync(env.DATA_DIR, { recursive: true, force: true });
    rmSync(env.PROMPTS_DIR, { recursive: true, force: true });
    const restore = await runCli(['restore', 'latest'], env);
    expect(restore.code, restore.stderr).toBe(0);
    // The generated token is back, readable by its owner only; the clients' requests below use it.
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);

    up = await startUp(env);
    const after = await fingerprint();
    // The restored catalog shows the run that took the snapshot as it ended, not running forever.
    const pg = embeddedPostgres(loadConfig(env, { dotEnv: false })).findRunning()!;
    const catalog = openDatabase(pg.url, { max: 1 });
    try {
      const taken = JSON.parse(backup.stdout) as { snapshotId: string; time: string };
      const runs = await catalog`
        select status, snapshot_id, finished_at from backup_runs where started_at <= ${taken.time}`;
      expect(runs.filter((r) => r.finished_at === null)).toEqual([]);
      expect(runs.filter((r) => r.snapshot_id === taken.snapshotId)).toEqual([
        expect.objectContaining({ status: 'succeeded' }),
      ]);
    } finally {
      await catalog.end({ timeout: 5 });
    }
    expect(after.tables).toEqual(before.tables);
    expect(after.objects).toEqual(before.objects);
    expect(after.prompts).toEqual(before.prompts);
    expect(Object.keys(after.keys).sort()).toEqual(Object.keys(before.keys).sort());
    expect(after.keys['disaster:plain']).toEqual({ value: 'kept', ttl: -1 });
    expect(after.keys['disaster:ttl']!.value).toBe('expires later');
    expect(after.keys['disaster:ttl']!.ttl).toBeGreaterThan(3_500_000);
    const history = (await (
      await fetch(`${up.baseUrl}/api/v1/prompts/ghibli/versions`, { headers: auth })
    ).json()) as {
      versions: unknown[];
    };
    expect(history.versions).toHaveLength(3);
    for (const id of ids) {
      const g = (await (await fetch(`${up.baseUrl}/api/v1/generations/${id}`, { headers: auth })).json()) as {
        outputs: Array<{ url: string }>;
      };
      for (const output of g.outputs)
        expect((await fetch(`${up.baseUrl}${output.url}`, { headers: auth })).status).toBe(200);
    }
    // A second restore into the live service is refused while it runs (issue 15), and changes nothing.
    const refused = await runCli(['restore', 'latest'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/trendgen up runs on .*stop it before restoring/);
    // An environment value still wins over the restored file.
    await up.stop();
    const other = randomBytes(24).toString('hex');
    up = await startUp({ ...env, ADMIN_TOKEN: other });
    const health = (t: string) =>
      fetch(`${up!.baseUrl}/api/v1/prompts`, { headers: { authorization: `Bearer ${t}` } }).then(
        (r) => r.status,
      );
    expect(await health(other)).toBe(200);
    expect(await health(token)).toBe(401);
  }, 400_000);
});
