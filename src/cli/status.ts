import { Command } from 'commander';
import type { Config } from '../config/config.ts';
import { RepositoryNotFoundError } from '../vault/repository/index.ts';
import { openRepository, resolveTargets } from '../vault/targets.ts';
import { recoverableWindow } from '../vault/wal/pitr-plan.ts';
import { protectionStatus } from '../vault/wal/report.ts';
import { printJson, withDatabase } from './context.ts';

export function statusCommand(): Command {
  return new Command('status')
    .description(
      'Show continuous protection: which system protects each kind of data (trendgen, CloudNativePG or the provider), per source and target, the newest recoverable moment and its lag, the WAL receiver and its slot, and the point-in-time window the vault holds. Exit 1 when a target lags more than a minute or commits are stalled.',
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { json?: boolean }) => {
      await withDatabase(async ({ config, sql }) => {
        const status = await protectionStatus(sql, config);
        const windows = await targetWindows(config);
        // `window`: the first target's, as before several targets; `windows`: each target's own.
        const window = windows[0]?.window ?? null;
        const unhealthy =
          Boolean(status.stall) || status.sources.some((s) => s.lagSeconds === null || s.lagSeconds > 60);
        if (status.continuous && unhealthy) process.exitCode = 1;
        if (options.json) return printJson({ ...status, window, windows });
        const out = process.stdout;
        out.write(`continuous protection: ${status.mode}; receiver ${status.receiver.state}`);
        if (status.receiver.slot?.retainedBytes != null)
          out.write(`, slot holds ${status.receiver.slot.retainedBytes} bytes of WAL`);
        out.write('\n');
        if (status.stall) out.write(`${status.stall}\n`);
        for (const { target, window: w, error } of windows)
          out.write(
            `restorable window on ${target}: ${
              w ? `${w.from} to ${w.until ?? 'unknown'}` : (error ?? 'none yet (no base backup)')
            }\n`,
          );
        for (const p of status.protectedBy) out.write(`${p.data.padEnd(9)} protected by ${p.by}: ${p.how}\n`);
        const width = Math.max(6, ...status.sources.map((s) => s.target.length));
        for (const s of status.sources) {
          out.write(
            `${s.source.padEnd(9)} ${s.target.padEnd(width)} until ${s.recoverableUntil ?? 'never'}  lag ${s.lagSeconds ?? '?'} s${s.error ? `  ${s.error}` : ''}${s.heldBy ? `  (held by: ${s.heldBy})` : ''}\n`,
          );
        }
      });
    });
}

interface TargetWindow {
  target: string;
  window: { from: string; until: string | null } | null;
  /** Why the window is unknown: the target could not be opened. */
  error?: string;
}

/** The point-in-time window each target holds (they differ while one is behind or was down). */
async function targetWindows(config: Config): Promise<TargetWindow[]> {
  let targets: ReturnType<typeof resolveTargets>;
  try {
    targets = resolveTargets(config);
  } catch {
    return [];
  }
  return Promise.all(
    targets.map(async (target): Promise<TargetWindow> => {
      try {
        const found = await recoverableWindow(await openRepository(target, config));
        const window = found
          ? { from: found.from.toISOString(), until: found.until?.toISOString() ?? null }
          : null;
        return { target: target.name, window };
      } catch (error) {
        if (error instanceof RepositoryNotFoundError) return { target: target.name, window: null };
        return { target: target.name, window: null, error: `cannot be read: ${(error as Error).message}` };
      }
    }),
  );
}
