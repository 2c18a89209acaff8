import { spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDatabase, openDatabase } from '../../src/db/connection.ts';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { EmbeddedPostgres, type RunningPostgres } from '../../src/embedded/postgres.ts';
import { runAsFor } from '../../src/embedded/run-as.ts';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from '../faults/harness/report.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { testRedisUrl } from '../support/database.ts';
import { seededRandom } from '../support/files.ts';
import { startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const SCENARIO = 'pg-failover';
const WRITERS = 4;
const PROMPT = (name: string, n: number) => SAMPLE_PROMPT(name, `portrait number ${n} of {subject}`);
const ADMIN_TOKEN = 'failover-admin-token-0123456789abcdef';

interface Pair {
  primary: EmbeddedPostgres;
  standby: EmbeddedPostgres;
  one: RunningPostgres;
  two: RunningPostgres;
}

/**
 * A primary and its synchronous hot standby (`pg_basebackup -R`). The primary waits for the standby at every commit;
 * the standby, once promoted, has no standby of its own: with the same setting every commit would wait for ever (an
 * operator such as CloudNativePG changes it then).
 */
async function startPair(root: string, stops: Array<() => Promise<unknown>>): Promise<Pair> {
  const primary = new EmbeddedPostgres({
    root: path.join(root, 'one'),
    user: 'trends',
    database: 'trends',
    port: 0,
    settings: { synchronous_standby_names: '*', wal_keep_size: '128MB' },
  });
  const standbyRoot = path.join(root, 'two');
  const standby = new EmbeddedPostgres({
    root: standbyRoot,
    user: 'trends',
    database: 'trends',
    port: 0,
    settings: { wal_keep_size: '128MB' },
  });
  stops.push(
    () => primary.stop(),
    () => standby.stop(),
  );
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
  const two = await standby.start();
  const sql = openDatabase(one.url, { max: 1 });
  try {
    await waitFor(
      'the standby to replicate synchronously',
      async () =>
        (await sql`select 1 from pg_stat_replication where sync_state = 'sync'`).length ? true : undefined,
      30_000,
      200,
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { primary, standby, one, two };
}

interface Save {
  n: number;
  sentAt: number;
  ackedAt: number;
}

/** Saves prompts through the API from several clients at once, keeping every acknowledged one. */
function saveUnderLoad(baseUrl: string) {
  const acked: Save[] = [];
  const refused: string[] = [];
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/yaml' };
  let n = 0;
  let saving = true;
  const writer = async () => {
    while (saving) {
      const mine = ++n;
      const name = `failover-${mine % 5}`;
      const sentAt = Date.now();
      const response = await fetch(`${baseUrl}/api/v1/prompts/${name}`, {
        method: 'PUT',
        headers,
        body: PROMPT(name, mine),
        signal: AbortSignal.timeout(10_000),
      }).catch((error: Error) => ({ status: 0, statusText: error.message }));
      if (response.status === 200 || response.status === 201)
        acked.push({ n: mine, sentAt, ackedAt: Date.now() });
      else
        refused.push(
          `${response.status} ${'text' in response ? await response.text() : response.statusText}`,
        );
      await sleep(20);
    }
  };
  const writers = Array.from({ length: WRITERS }, writer);
  return {
    acked,
    refused,
    stop: async () => {
      saving = false;
      await Promise.all(writers);
    },
  };
}

interface Outcome {
  acknowledged: number;
  lost: number;
  /** From the SIGKILL of the primary to the first acknowledged save that was sent after it. */
  unavailableMs: number;
}

/**
 * One failover: `trendgen serve` is given both hosts in one URL (`target_session_attrs=primary`, as CloudNativePG's -rw
 * service or Patroni would be reached); under a stream of prompt saves the primary is SIGKILLed at a random moment and
 * the standby promoted at once. The service must come back on the new primary by itself, and every save it
 * acknowledged must be there (synchronous replication).
 */
async function failoverOnce(root: string, seed: number): Promise<Outcome> {
  const random = seededRandom(seed);
  const stops: Array<() => Promise<unknown>> = [];
  let serve: UpProcess | undefined;
  try {
    const { one, two } = await startPair(root, stops);
    const password = new URL(one.url).password;
    serve = await startUp(
      {
        DATABASE_URL: `postgres://trends:${password}@127.0.0.1:${one.port},127.0.0.1:${two.port}/trends?target_session_attrs=primary`,
        REDIS_URL: testRedisUrl(),
        DATA_DIR: path.join(root, 'data'),
        PROMPTS_DIR: path.join(root, 'prompts'),
        BACKUP_DIR: path.join(root, 'backups'),
        ADMIN_TOKEN,
      },
      { command: 'serve' },
    );
    const load = saveUnderLoad(serve.baseUrl);
    await sleep(2000 + Math.floor(random() * 3000));
    expect(load.acked.length, load.refused.slice(0, 3).join('\n')).toBeGreaterThan(2);
    const killedAt = Date.now();
    process.kill(one.pid, 'SIGKILL');
    const promoting = openDatabase(two.url, { max: 1 });
    await promoting`select pg_promote()`;
    await promoting.end({ timeout: 5 });
    const back = await waitFor(
      'a save sent after the kill, acknowledged by the new primary',
      async () => load.acked.find((save) => save.sentAt > killedAt)?.ackedAt,
      60_000,
      50,
    );
    await sleep(2000);
    await load.stop();

    // Every acknowledged save is in the new primary's history: the number each one wrote into its prompt.
    const check = openDatabase(two.url, { max: 1 });
    const rows = await check<{ content: string }[]>`
      select content from prompt_versions where name like 'failover-%'`.finally(() =>
      check.end({ timeout: 5 }),
    );
    const stored = new Set(rows.map((r) => Number(/portrait number (\d+) of/.exec(r.content)?.[1])));
    const missing = load.acked.filter((save) => !stored.has(save.n)).map((save) => save.n);
    expect((await fetch(`${serve.baseUrl}/readyz`)).status).toBe(200);
    console.log(
      `failover: ${load.acked.length} saves acknowledged, ${load.refused.length} refused meanwhile (${[...new Set(load.refused)].join('; ')}), ${missing.length} lost; writes back ${back - killedAt} ms after the primary was killed`,
    );
    return { acknowledged: load.acked.length, lost: missing.length, unavailableMs: back - killedAt };
  } finally {
    await serve?.stop().catch(() => {});
    for (const stop of stops.reverse()) await stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

/** The median as docs/reliability.md computes it (the mean of the middle two for an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

/**
 * Level 3's PostgreSQL failover, with real servers: one run in CI; `FAULT_RUNS=20` for the figures (with
 * `FAULT_REPORT=docs/reliability.md` they go into the reliability table as `pg-failover`), `FAULT_SEED` replays one.
 */
describe('PostgreSQL failover under load, with real servers', () => {
  const temp = tempDir('failover');
  const outcomes: Outcome[] = [];

  afterAll(() => {
    temp.remove();
    if (outcomes.length === 0) return;
    const unavailable = outcomes.map((o) => o.unavailableMs);
    const sum = (pick: (o: Outcome) => number) => outcomes.reduce((total, o) => total + pick(o), 0);
    console.log(
      `${SCENARIO}: ${outcomes.length} runs, ${sum((o) => o.acknowledged)} acknowledged saves, ${sum((o) => o.lost)} lost; ` +
        `write unavailability p50 ${median(unavailable)} ms, max ${Math.max(...unavailable)} ms`,
    );
  });

  it.skipIf(!scenarioSelected(SCENARIO))(
    'serve follows the promoted standby by itself and keeps every acknowledged save, run after run',
    async () => {
      for (let run = 0; run < faultRuns(); run++) {
        const seed = runSeed(SCENARIO, run);
        const outcome = await failoverOnce(path.join(temp.dir, `run-${run}`), seed);
        outcomes.push(outcome);
        recordRun({
          scenario: SCENARIO,
          seed,
          acknowledged: outcome.acknowledged,
          lost: outcome.lost,
          corrupted: 0,
          recoveryMs: outcome.unavailableMs,
        });
      }
      // Every run first, so that a loss in one still leaves the figures of all.
      expect(outcomes.map((o) => o.lost).filter(Boolean), 'acknowledged saves lost after failover').toEqual(
        [],
      );
      for (const outcome of outcomes) expect(outcome.unavailableMs).toBeLessThan(30_000);
    },
    240_000 * faultRuns(),
  );
});
