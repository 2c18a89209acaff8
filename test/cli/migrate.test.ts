import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/db/migrate.ts';
import { waitFor } from '../../src/lib/process.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { CLI } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

function run(
  args: string[],
  env: Record<string, string>,
): { done: Promise<{ code: number | null; out: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr.on('data', (chunk) => {
    out += chunk;
  });
  return { done: new Promise((resolve) => child.once('exit', (code) => resolve({ code, out }))) };
}

describe('trendgen migrate', () => {
  let db: TestDatabase;
  const temp = tempDir('migrate');
  afterAll(async () => {
    await db?.drop();
    temp.remove();
  });

  it('two at once: one applies, the other waits for it and finds nothing left', async () => {
    db = await createTestDatabase({ migrate: false });
    const env = { DATABASE_URL: db.url, DATA_DIR: temp.dir };
    // Hold the migration lock so that both processes are certainly running when it is released.
    const holder = await db.sql.reserve();
    await holder`select pg_advisory_lock(7401552331)`;
    const first = run(['migrate', '--json'], env);
    const second = run(['migrate', '--json'], env);
    await waitFor(
      'both migrate processes to wait on the lock',
      async () => {
        const [row] =
          await db.sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
        return (row?.n as number) >= 2 ? true : undefined;
      },
      30_000,
    );
    await holder`select pg_advisory_unlock(7401552331)`;
    holder.release();
    const results = await Promise.all([first.done, second.done]);
    for (const result of results) expect(result.code, result.out).toBe(0);
    const reports = results.map((r) => JSON.parse(r.out.slice(r.out.indexOf('{'))));
    const appliedCounts = reports.map((r) => r.applied.length).sort();
    expect(appliedCounts).toEqual([0, loadMigrations().length]);
    for (const result of results) expect(result.out).toContain('Another process is migrating; waiting');
    const rows = await db.sql`select version from schema_migrations order by version`;
    expect(rows.map((r) => r.version)).toEqual(loadMigrations().map((m) => m.version));
  });

  it('exits 2 on wrong usage and 1 with one sentence on a bad configuration', async () => {
    const usage = await run(['migrate', '--no-such-flag'], {}).done;
    expect(usage.code).toBe(2);
    const config = await run(['migrate'], { PORT: 'eighty' }).done;
    expect(config.code).toBe(1);
    expect(config.out.trim()).toBe('trendgen: PORT must be a whole number (got "eighty").');
  });
});
