import { spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDatabase, openDatabase } from '../../src/db/connection.ts';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { runAsFor } from '../../src/embedded/run-as.ts';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { testRedisUrl } from '../support/database.ts';
import { startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const PROMPT = (name: string, n: number) => SAMPLE_PROMPT(name, `portrait number ${n} of {subject}`);

/**
 * Level 3's PostgreSQL: a primary with a synchronous hot standby, and `trendgen serve` given both hosts in one
 * URL (`target_session_attrs=primary`, as CloudNativePG's -rw service or Patroni would be reached). Under a
 * stream of prompt saves the primary is SIGKILLed and the standby promoted: the service must come back on
 * the new primary by itself, and every save it acknowledged must be there (synchronous replication).
 */
describe('PostgreSQL failover under load, with real servers', { timeout: 240_000 }, () => {
  const temp = tempDir('failover');
  // The primary waits for the standby at every commit. The standby, once promoted, has no standby of its own:
  // with the same setting every commit would wait for ever (an operator such as CloudNativePG changes it then).
  const settings = { synchronous_standby_names: '*', wal_keep_size: '128MB' };
  const primary = new EmbeddedPostgres({
    root: path.join(temp.dir, 'one'),
    user: 'trends',
    database: 'trends',
    port: 0,
    settings,
  });
  const standbyRoot = path.join(temp.dir, 'two');
  const standby = new EmbeddedPostgres({
    root: standbyRoot,
    user: 'trends',
    database: 'trends',
    port: 0,
    settings: { wal_keep_size: '128MB' },
  });
  let serve: UpProcess | undefined;
  const adminToken = 'failover-admin-token-0123456789abcdef';

  beforeAll(async () => {
    const one = await primary.start();
    await ensureDatabase(primary.url(one.port, 'postgres'), 'trends');
    // The standby: a base backup of the primary that follows it (-R), owned like the embedded server's files.
    for (const dir of ['', 'secrets', 'run', 'logs'])
      mkdirSync(path.join(standbyRoot, dir), { recursive: true });
    copyFileSync(primary.passwordFile, standby.passwordFile);
    const runAs = runAsFor('pg_basebackup', standbyRoot);
    if (runAs) chownSync(standbyRoot, runAs.uid, runAs.gid);
    const basebackup = spawnSync(
      findPostgresBinary('pg_basebackup'),
      ['-D', standby.dataDir, '-R', '-X', 'stream', '-c', 'fast', '-d', one.url],
      { encoding: 'utf8', ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) },
    );
    expect(basebackup.status, basebackup.stderr).toBe(0);
    await standby.start();
    const sql = openDatabase(one.url, { max: 1 });
    await waitFor(
      'the standby to replicate synchronously',
      async () =>
        (await sql`select 1 from pg_stat_replication where sync_state = 'sync'`).length ? true : undefined,
      30_000,
      200,
    );
    await sql.end({ timeout: 5 });
  });

  afterAll(async () => {
    await serve?.stop().catch(() => {});
    await standby.stop().catch(() => {});
    await primary.stop().catch(() => {});
    temp.remove();
  });

  it('serve follows the promoted standby by itself and keeps every acknowledged save', async () => {
    const one = primary.findRunning()!;
    const two = standby.findRunning()!;
    const password = new URL(one.url).password;
    serve = await startUp(
      {
        DATABASE_URL: `postgres://trends:${password}@127.0.0.1:${one.port},127.0.0.1:${two.port}/trends?target_session_attrs=primary`,
        REDIS_URL: testRedisUrl(),
        DATA_DIR: path.join(temp.dir, 'data'),
        PROMPTS_DIR: path.join(temp.dir, 'prompts'),
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        ADMIN_TOKEN: adminToken,
      },
      { command: 'serve' },
    );
    const base = serve.baseUrl;
    const headers = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/yaml' };

    const acked: Array<{ n: number; at: number }> = [];
    const failed: string[] = [];
    let n = 0;
    let saving = true;
    const saves = (async () => {
      while (saving) {
        const mine = ++n;
        const name = `failover-${mine % 5}`;
        const response = await fetch(`${base}/api/v1/prompts/${name}`, {
          method: 'PUT',
          headers,
          body: PROMPT(name, mine),
          signal: AbortSignal.timeout(10_000),
        }).catch((error: Error) => ({ status: 0, statusText: error.message }));
        if (response.status === 200 || response.status === 201) acked.push({ n: mine, at: Date.now() });
        else
          failed.push(
            `${response.status} ${'text' in response ? await response.text() : response.statusText}`,
          );
        await sleep(50);
      }
    })();

    await sleep(3000);
    const beforeKill = acked.length;
    expect(beforeKill, failed.slice(0, 3).join('\n')).toBeGreaterThan(2);
    const killedAt = Date.now();
    process.kill(one.pid, 'SIGKILL');
    const promoting = openDatabase(two.url, { max: 1 });
    await promoting`select pg_promote()`;
    await promoting.end({ timeout: 5 });
    const back = await waitFor(
      'a save acknowledged by the new primary',
      async () => acked.find((a) => a.at > killedAt + 100)?.at,
      60_000,
      100,
    );
    const recoveryMs = back - killedAt;
    await sleep(2000);
    saving = false;
    await saves;
    console.log(
      `failover: ${acked.length} saves acknowledged (${beforeKill} before the kill), ${failed.length} refused meanwhile, back ${recoveryMs} ms after the primary was killed`,
    );
    expect(recoveryMs).toBeLessThan(30_000);

    // Every acknowledged save is in the new primary's history: the number each one wrote into its prompt.
    const check = openDatabase(two.url, { max: 1 });
    const rows = await check<
      { content: string }[]
    >`select content from prompt_versions where name like 'failover-%'`;
    await check.end({ timeout: 5 });
    const stored = new Set(rows.map((r) => Number(/portrait number (\d+) of/.exec(r.content)?.[1])));
    const missing = acked.filter((a) => !stored.has(a.n)).map((a) => a.n);
    expect(missing, 'acknowledged saves missing after failover').toEqual([]);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
  });
});
