import { Command } from 'commander';
import { openFirstTarget } from '../vault/targets.ts';
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
        let window: { from: string; until: string | null } | null = null;
        try {
          const { repo } = await openFirstTarget(config);
          const found = await recoverableWindow(repo);
          if (found) window = { from: found.from.toISOString(), until: found.until?.toISOString() ?? null };
        } catch {
          // No target yet: the window is simply unknown.
        }
        const unhealthy =
          Boolean(status.stall) || status.sources.some((s) => s.lagSeconds === null || s.lagSeconds > 60);
        if (status.continuous && unhealthy) process.exitCode = 1;
        if (options.json) return printJson({ ...status, window });
        const out = process.stdout;
        out.write(`continuous protection: ${status.mode}; receiver ${status.receiver.state}`);
        if (status.receiver.slot?.retainedBytes != null)
          out.write(`, slot holds ${status.receiver.slot.retainedBytes} bytes of WAL`);
        out.write('\n');
        if (status.stall) out.write(`${status.stall}\n`);
        out.write(
          window
            ? `restorable window: ${window.from} to ${window.until ?? 'unknown'}\n`
            : 'restorable window: none yet (no base backup)\n',
        );
        for (const p of status.protectedBy) out.write(`${p.data.padEnd(9)} protected by ${p.by}: ${p.how}\n`);
        const width = Math.max(6, ...status.sources.map((s) => s.target.length));
        for (const s of status.sources) {
          out.write(
            `${s.source.padEnd(9)} ${s.target.padEnd(width)} until ${s.recoverableUntil ?? 'never'}  lag ${s.lagSeconds ?? '?'} s${s.error ? `  ${s.error}` : ''}\n`,
          );
        }
      });
    });
}
