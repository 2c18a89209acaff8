import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Sql } from '../../src/db/connection.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/database.ts';
import { walkFiles } from '../support/files.ts';
import type { VaultEnv } from '../support/vault-env.ts';

/**
 * Every live write the vault fault scenarios make, with its expected bytes: objects (by key, SHA-256),
 * rows of `fault_rows` (by id, body) and prompt files (by name, content). A write counts as acknowledged
 * once a backup that contains it exited 0.
 */
export interface Ledger {
  objects: Map<string, string>;
  rows: Map<string, string>;
  prompts: Map<string, string>;
}

export const newLedger = (): Ledger => ({ objects: new Map(), rows: new Map(), prompts: new Map() });

export const ledgerSize = (ledger: Ledger) => ledger.objects.size + ledger.rows.size + ledger.prompts.size;

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** A PNG signature followed by seeded noise: incompressible, like a real image, and unique per seed. */
function pngLike(random: () => number, size: number): Buffer {
  const bytes = Buffer.alloc(size + 4);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(bytes, 0);
  for (let i = 8; i < size; i += 4) bytes.writeUInt32LE(Math.floor(random() * 2 ** 32), i);
  return bytes.subarray(0, size);
}

export async function prepareLiveTable(vault: VaultEnv): Promise<void> {
  await vault.db.sql`create table if not exists fault_rows (id text primary key, body text not null)`;
}

/** New live data: a few objects through the object store, rows, and one prompt file. Returns the writes made. */
export async function addLiveData(
  vault: VaultEnv,
  ledger: Ledger,
  random: () => number,
  tag: string,
  sizes: { objects?: number; rows?: number; maxObjectBytes?: number } = {},
): Promise<number> {
  const objectCount = 1 + Math.floor(random() * (sizes.objects ?? 4));
  for (let i = 0; i < objectCount; i++) {
    const bytes = pngLike(random, 2_000 + Math.floor(random() * (sizes.maxObjectBytes ?? 200_000)));
    const record = await vault.objects.put(Readable.from([bytes]), { kind: 'photo', maxBytes: 1e9 });
    ledger.objects.set(record.key, sha256(bytes));
  }
  const rowCount = 1 + Math.floor(random() * (sizes.rows ?? 200));
  const rows = Array.from({ length: rowCount }, (_, i) => ({
    id: `${tag}-${i}`,
    body: `${tag} row ${i} ${Math.floor(random() * 1e12).toString(36)}`.repeat(1 + Math.floor(random() * 20)),
  }));
  await vault.db.sql`insert into fault_rows ${vault.db.sql(rows)}`;
  for (const row of rows) ledger.rows.set(row.id, row.body);
  const name = `f-${tag}`;
  const content = SAMPLE_PROMPT(name, `Turn {subject} into ${Math.floor(random() * 1e12).toString(36)}`);
  writeFileSync(path.join(vault.promptsDir, `${name}.yaml`), content);
  ledger.prompts.set(name, content);
  return objectCount + rowCount + 1;
}

export interface Verdict {
  lost: number;
  corrupted: number;
  /** Why, for the assertion message. */
  problems: string[];
}

/**
 * Compares a restore (objects and prompts under `dir`, rows in `databaseUrl`) with the ledger: a write that is
 * not there is lost, one with other bytes is corrupted. `exact` also counts files that should not be there.
 */
export async function compareRestore(
  ledger: Ledger,
  dir: string,
  sql: Sql,
  options: { exact?: boolean } = {},
): Promise<Verdict> {
  const verdict: Verdict = { lost: 0, corrupted: 0, problems: [] };
  const lost = (what: string) => {
    verdict.lost++;
    if (verdict.problems.length < 10) verdict.problems.push(`lost ${what}`);
  };
  const corrupted = (what: string) => {
    verdict.corrupted++;
    if (verdict.problems.length < 10) verdict.problems.push(`corrupted ${what}`);
  };
  for (const [key, hash] of ledger.objects) {
    const file = path.join(dir, 'objects', key);
    if (!existsSync(file)) lost(`object ${key}`);
    else if (sha256(readFileSync(file)) !== hash) corrupted(`object ${key}`);
  }
  for (const [name, content] of ledger.prompts) {
    const file = path.join(dir, 'prompts', `${name}.yaml`);
    if (!existsSync(file)) lost(`prompt ${name}`);
    else if (readFileSync(file, 'utf8') !== content) corrupted(`prompt ${name}`);
  }
  let rows: Map<string, string> = new Map();
  try {
    const found = await sql<{ id: string; body: string }[]>`select id, body from fault_rows`;
    rows = new Map(found.map((r) => [r.id, r.body]));
  } catch (error) {
    verdict.problems.push(`fault_rows unreadable: ${(error as Error).message}`);
  }
  for (const [id, body] of ledger.rows) {
    const got = rows.get(id);
    if (got === undefined) lost(`row ${id}`);
    else if (got !== body) corrupted(`row ${id}`);
  }
  if (options.exact) {
    // A mix of two restores, or leftovers presented as restored data, shows as files nobody backed up.
    const objectsDir = path.join(dir, 'objects');
    const extra = existsSync(objectsDir)
      ? walkFiles(objectsDir)
          .map((f) => path.relative(objectsDir, f))
          .filter((key) => !key.startsWith('.tmp') && !ledger.objects.has(key))
      : [];
    const promptsDir = path.join(dir, 'prompts');
    const extraPrompts = existsSync(promptsDir)
      ? readdirSync(promptsDir).filter((f) => !ledger.prompts.has(f.replace(/\.yaml$/, '')))
      : [];
    for (const f of [...extra, ...extraPrompts]) corrupted(`unexpected file ${f}`);
    for (const id of rows.keys()) if (!ledger.rows.has(id)) corrupted(`unexpected row ${id}`);
  }
  return verdict;
}

/** Restores a snapshot into a scratch database and folder and compares it with the ledger. */
export async function restoreAndCompare(
  vault: VaultEnv,
  ledger: Ledger,
  snapshot: string,
  label: string,
  env: Record<string, string> = vault.env,
): Promise<Verdict & { code: number | null; stderr: string }> {
  const scratch = await createTestDatabase({ migrate: false });
  const dir = path.join(vault.dir, `verify-${label}`);
  try {
    const restored = await runCli(
      [
        'restore',
        snapshot,
        '--only',
        'postgres,prompts,objects',
        '--to-database',
        scratch.url,
        '--to-dir',
        dir,
      ],
      env,
    );
    if (restored.code !== 0) {
      return {
        lost: ledgerSize(ledger),
        corrupted: 0,
        problems: [`restore ${snapshot} exited ${restored.code}: ${restored.stderr}`],
        code: restored.code,
        stderr: restored.stderr,
      };
    }
    return { ...(await compareRestore(ledger, dir, scratch.sql)), code: 0, stderr: restored.stderr };
  } finally {
    await scratch.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Listed {
  id: string;
  time: string;
}

export async function listSnapshots(env: Record<string, string>): Promise<Listed[]> {
  const result = await runCli(['snapshots', '--json'], env);
  if (result.code !== 0) throw new Error(`snapshots exited ${result.code}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { snapshots: Listed[] }).snapshots;
}
