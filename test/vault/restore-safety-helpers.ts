import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/lib/process.ts';
import { type CliResult, runCli } from '../support/cli.ts';
import { type StoredBlob, storedBlob } from '../support/stored-blobs.ts';
import { openVaultRepository } from './vault-repository.ts';

/** Where the chunks of a snapshot's prompts files lie (one chunk each: prompts are small). */
export async function promptChunks(env: Record<string, string>, snapshotId: string): Promise<StoredBlob[]> {
  const backupDir = env.BACKUP_DIR!;
  // Opened as the service opens it: with its password, or the key its unencrypted records are tagged with.
  const repo = await openVaultRepository(env);
  const snapshot = await repo.loadSnapshot(snapshotId);
  const tree = await repo.readTree(snapshot.trees.prompts!);
  const ids = tree.entries.flatMap((entry) => entry.chunks ?? []);
  return Promise.all(ids.map((id) => storedBlob(repo, backupDir, id)));
}

/** Flips one byte of a file past its header, so it no longer authenticates or hashes to its name. */
export function flipByte(file: string, at = 0.5): void {
  const bytes = readFileSync(file);
  const i = Math.min(bytes.length - 1, 8 + Math.floor(at * (bytes.length - 8)));
  bytes[i] = bytes[i]! ^ 0x20;
  writeFileSync(file, bytes);
}

/**
 * `trendgen up` (or `serve` on its own, as Compose runs it) on a restore's destinations (the database and folders given), as an operator would start it
 * after a failed restore: it must refuse before it serves anything. Killed after `timeoutMs` if it did not.
 */
export async function upOn(
  env: Record<string, string>,
  dest: { databaseUrl: string; dir: string; dataDir: string },
  timeoutMs = 30_000,
  command: 'up' | 'serve' = 'up',
): Promise<CliResult & { served: boolean }> {
  const port = await freePort();
  const run = runCli([command], {
    ...env,
    DATABASE_URL: dest.databaseUrl,
    PROMPTS_DIR: path.join(dest.dir, 'prompts'),
    STORAGE_URL: `file://${path.join(dest.dir, 'objects')}`,
    DATA_DIR: dest.dataDir,
    PORT: String(port),
  });
  let served = false;
  const timer = setTimeout(() => {
    served = true;
    run.child.kill('SIGTERM');
  }, timeoutMs);
  const result = await run;
  clearTimeout(timer);
  return { ...result, served };
}
