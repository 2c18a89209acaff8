import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fsyncDirSync } from '../../lib/files.ts';
import {
  DEFAULT_MAX_PROMPT_BYTES,
  type FolderFromHistory,
  writePromptsFromHistory,
} from '../../prompts/index.ts';
import { withSql } from './postgres-admin.ts';
import { directoryProgress, directoryStats, type SnapshotSource } from './types.ts';

/**
 * The prompts folder as it is on disk, stored incrementally against the parent snapshot's tree; restored
 * whole: beside it, then swapped in with renames. With `history` (the database this restore restores), the
 * folder is then written from that prompt history once `history.restored` settles, since the files were read
 * seconds after the database was dumped: the database is the recovery point, and the archive serves only
 * prompts the history does not know (I8). The files are written without an fsync each: the folder stays marked
 * until the restore has flushed its file system once at the end (restore.ts).
 */
export function promptsSource(
  promptsDir: string,
  history?: { url: string; restored: Promise<unknown> },
): SnapshotSource<{ files: number }> {
  return {
    name: 'prompts',
    backup: async (ctx) => {
      ctx.progress('prompts');
      mkdirSync(promptsDir, { recursive: true });
      const { treeId, stats } = await ctx.repo.storeDirectory(promptsDir, {
        ...(ctx.parent?.trees.prompts ? { parentTree: ctx.parent.trees.prompts } : {}),
        onProgress: directoryProgress(ctx, 'prompts'),
      });
      return {
        tree: treeId,
        facts: { files: stats.filesNew + stats.filesChanged + stats.filesUnchanged },
        stats: directoryStats(stats),
      };
    },
    restore: async (ctx) => {
      ctx.progress('prompts');
      const parent = path.dirname(promptsDir);
      mkdirSync(parent, { recursive: true });
      const name = path.basename(promptsDir);
      const staging = path.join(parent, `.${name}.restoring-${randomBytes(4).toString('hex')}`);
      const result = await ctx.repo.restoreTree(ctx.tree, staging, { durable: false });
      let fromHistory: FolderFromHistory | undefined;
      if (history) {
        await history.restored;
        ctx.progress('prompts', 'from the restored history');
        fromHistory = await withSql(history.url, (sql) =>
          writePromptsFromHistory(sql, staging, { maxBytes: DEFAULT_MAX_PROMPT_BYTES }),
        );
      }
      const old = path.join(parent, `.${name}.replaced-${randomBytes(4).toString('hex')}`);
      if (existsSync(promptsDir)) renameSync(promptsDir, old);
      renameSync(staging, promptsDir);
      fsyncDirSync(parent);
      rmSync(old, { recursive: true, force: true });
      return {
        ...result,
        ...(fromHistory
          ? { fromHistory: { written: fromHistory.written.length, removed: fromHistory.removed.length } }
          : {}),
      };
    },
  };
}
