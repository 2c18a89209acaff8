import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fsyncDirSync } from '../../lib/files.ts';
import { directoryProgress, directoryStats, type SnapshotSource } from './types.ts';

/**
 * The prompts folder as it is on disk, stored incrementally against the parent snapshot's tree; restored
 * whole: beside it, then swapped in with renames.
 */
export function promptsSource(promptsDir: string): SnapshotSource<{ files: number }> {
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
      const result = await ctx.repo.restoreTree(ctx.tree, staging);
      const old = path.join(parent, `.${name}.replaced-${randomBytes(4).toString('hex')}`);
      if (existsSync(promptsDir)) renameSync(promptsDir, old);
      renameSync(staging, promptsDir);
      fsyncDirSync(parent);
      rmSync(old, { recursive: true, force: true });
      return { ...result };
    },
  };
}
