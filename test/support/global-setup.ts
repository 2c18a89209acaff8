import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { parseReport, reliabilityDocument, reliabilityTable } from '../faults/harness/reliability-doc.ts';
import { readResults } from '../faults/harness/report.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string;
    redisUrl: string;
  }
}

/**
 * The compiled CLI, current; one real PostgreSQL and one real Redis for the whole run; each test file makes its
 * own database.
 */
export default async function setup(project: TestProject) {
  // Tests start the CLI as users do, from dist/: rebuilt first when a source changed since the last build.
  execFileSync(
    process.execPath,
    [path.resolve(import.meta.dirname, '../../scripts/build.mjs'), '--if-stale'],
    {
      stdio: 'inherit',
    },
  );
  const root = mkdtempSync(path.join(os.tmpdir(), 'trendgen-test-services-'));
  chmodSync(root, 0o755);
  const postgres = new EmbeddedPostgres({
    root,
    user: 'trends',
    database: 'postgres',
    port: 0,
    // Throwaway data: durability settings off make the suite faster; the crash tests start their own.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
  });
  const redis = new EmbeddedRedis({ root, port: 0, appendfsync: 'everysec' });
  const [pg, rd] = await Promise.all([postgres.start(), redis.start()]);
  const faultResultsFile = path.join(root, 'fault-results.jsonl');
  writeFileSync(faultResultsFile, '');
  project.provide('postgresAdminUrl', pg.url);
  project.provide('redisUrl', rd.url);
  project.provide('faultResultsFile', faultResultsFile);
  return async () => {
    reportFaults(faultResultsFile);
    await Promise.all([postgres.stop(), redis.stop()]);
    rmSync(root, { recursive: true, force: true });
  };
}

/** Prints the fault table after every run; FAULT_REPORT also writes it as docs/reliability.md. */
function reportFaults(file: string): void {
  const results = readResults(file);
  if (results.length === 0) return;
  process.stdout.write(`\nfault scenarios:\n${reliabilityTable(results)}\n`);
  const target = process.env.FAULT_REPORT;
  if (target) {
    const runs = Number(process.env.FAULT_RUNS ?? 1);
    // Scenarios this run left out (FAULT_ONLY, a subset of files) keep their rows from the file as it was.
    const earlier = existsSync(target) ? parseReport(readFileSync(target, 'utf8')) : [];
    writeFileSync(
      target,
      reliabilityDocument(results, { date: new Date().toISOString().slice(0, 10), runs }, earlier),
    );
    process.stdout.write(`fault report written to ${target}\n`);
  }
}
