import { spawn } from 'node:child_process';
import { findPostgresBinary } from '../embedded/binaries.ts';
import { withSql } from './sources/postgres-admin.ts';
import { libpqConnection } from './sources/postgres-client.ts';

export interface AmcheckVerdict {
  ok: boolean;
  /** What pg_amcheck found, or how many relations it checked. */
  detail: string;
}

/** Findings quoted in a drill's verdict; the rest are counted. */
const FINDINGS_SHOWN = 5;

/**
 * Checks what PostgreSQL can check of a restored database: every heap (pages, tuples, TOAST) and every B-tree
 * index, each index against every heap tuple (`--heapallindexed`). The amcheck extension is created in the
 * database first; it is a scratch database, removed after the drill.
 */
export async function amcheckDatabase(url: string): Promise<AmcheckVerdict> {
  await withSql(url, (sql) => sql`create extension if not exists amcheck`);
  const conn = libpqConnection(url);
  const args = ['--heapallindexed', '--no-password', '--progress', conn.dbname];
  const { code, stdout, stderr } = await runTool(findPostgresBinary('pg_amcheck'), args, conn.env);
  const scrub = (text: string) => (conn.password ? text.replaceAll(conn.password, '***') : text);
  if (code === 0) {
    const checked = /(\d+)\/\d+ relations/.exec(stderr)?.[1];
    return {
      ok: true,
      detail: `pg_amcheck --heapallindexed found nothing wrong${checked ? ` in ${checked} relations` : ''}`,
    };
  }
  const findings = stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const shown = findings.slice(0, FINDINGS_SHOWN).join(' ');
  const more =
    findings.length > FINDINGS_SHOWN ? ` (and ${findings.length - FINDINGS_SHOWN} more lines)` : '';
  const why = shown || stderr.trim().split('\n').slice(-3).join(' ');
  return { ok: false, detail: scrub(`pg_amcheck exited with ${code}: ${why}${more}`).replace(/\s+/g, ' ') };
}

function runTool(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < 64_000) stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-8000);
    });
    child.once('error', (error) => reject(new Error(`pg_amcheck could not be started: ${error.message}.`)));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
