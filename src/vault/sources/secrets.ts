import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { writeFileAtomicSync } from '../../lib/files.ts';
import type { TreeEntry } from '../repository/index.ts';
import type { SnapshotSource } from './types.ts';

/**
 * The service's own secrets under DATA_DIR/secrets (the admin token `up` generates, and any other), so that
 * after a disaster restore the clients' token still works. Left out: the embedded servers' passwords (they
 * belong to the PostgreSQL and Redis data folders, which a snapshot holds as dumps and a restore loads into
 * whatever instance runs) and the repository key (a snapshot must not carry the key that authenticates it).
 * Restored with mode 0600; a secret already there is kept unless the restore is in place, and an
 * environment value (ADMIN_TOKEN…) still wins over the file wherever the service reads one.
 */
export const SECRETS_NOT_IN_SNAPSHOTS = new Set(['postgres-password', 'redis-password', 'backup-key']);

const isSecretName = (name: string) => !name.startsWith('.') && !SECRETS_NOT_IN_SNAPSHOTS.has(name);

export function secretsSource(secretsDir: string): SnapshotSource<{ files: number }> {
  return {
    name: 'secrets',
    backup: async (ctx) => {
      ctx.progress('secrets');
      const entries: TreeEntry[] = [];
      let bytesAdded = 0;
      let blobsAdded = 0;
      const names = existsSync(secretsDir) ? readdirSync(secretsDir).filter(isSecretName).sort() : [];
      for (const name of names) {
        const file = path.join(secretsDir, name);
        const info = statSync(file, { throwIfNoEntry: false });
        if (!info?.isFile()) continue;
        const stored = await ctx.repo.storeFile(Readable.from([await readFile(file)]));
        blobsAdded += stored.blobsAdded;
        bytesAdded += stored.bytesAdded;
        entries.push({
          name,
          type: 'file',
          mode: 0o600,
          mtimeMs: info.mtimeMs,
          size: stored.size,
          chunks: stored.chunks,
        });
      }
      const tree = await ctx.repo.writeTree(entries);
      return {
        tree,
        facts: { files: entries.length },
        stats: { files: entries.length, blobsAdded, bytesAdded },
      };
    },
    restore: async (ctx) => {
      ctx.progress('secrets');
      const staging = path.join(ctx.scratch, 'secrets');
      await ctx.repo.restoreTree(ctx.tree, staging);
      mkdirSync(secretsDir, { recursive: true });
      chmodSync(secretsDir, 0o700);
      const restored: string[] = [];
      const kept: string[] = [];
      for (const name of readdirSync(staging).filter(isSecretName)) {
        const content = readFileSync(path.join(staging, name));
        const target = path.join(secretsDir, name);
        if (existsSync(target) && !ctx.overwrite) {
          if (!readFileSync(target).equals(content)) kept.push(name);
          continue;
        }
        writeFileAtomicSync(target, content, 0o600);
        chmodSync(target, 0o600);
        restored.push(name);
      }
      return { files: restored.length, restored, kept };
    },
  };
}
