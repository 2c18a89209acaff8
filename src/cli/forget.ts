import { Command, Option } from 'commander';
import { loadConfig } from '../config/config.ts';
import { formatBytes } from '../lib/format.ts';
import { parseDuration, type RetentionPolicy } from '../vault/forget.ts';
import { applyRetention } from '../vault/retention.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';
import { UsageError } from './usage-error.ts';

const KEEP_FLAGS = [
  'keepLast',
  'keepHourly',
  'keepDaily',
  'keepWeekly',
  'keepMonthly',
  'keepWithin',
] as const;

/** The policy the flags give, or the configured one (BACKUP_KEEP_*, BACKUP_RETENTION_DAYS) when none is given. */
function policyFrom(options: Record<string, unknown>, configured: RetentionPolicy): RetentionPolicy {
  const given = KEEP_FLAGS.filter((k) => options[k] !== undefined);
  for (const k of given.filter((f) => f !== 'keepWithin')) {
    if (!Number.isInteger(options[k]) || (options[k] as number) < 0)
      throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} takes a whole number.`);
  }
  if (!given.length) return { ...configured };
  try {
    return {
      last: options.keepLast as number | undefined,
      hourly: options.keepHourly as number | undefined,
      daily: options.keepDaily as number | undefined,
      weekly: options.keepWeekly as number | undefined,
      monthly: options.keepMonthly as number | undefined,
      ...(options.keepWithin ? { withinMs: parseDuration(options.keepWithin as string) } : {}),
    };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function forgetCommand(): Command {
  const keep = (name: string, what: string) =>
    new Option(`--keep-${name} <n>`, `keep the newest snapshot of each of the last n ${what}`).argParser(
      Number,
    );
  return new Command('forget')
    .description(
      'Apply the retention policy (BACKUP_KEEP_* and BACKUP_RETENTION_DAYS unless flags say otherwise); --prune then deletes the blobs nothing uses.',
    )
    .addOption(new Option('--keep-last <n>', 'keep the n newest snapshots').argParser(Number))
    .addOption(keep('hourly', 'hours'))
    .addOption(keep('daily', 'days'))
    .addOption(keep('weekly', 'weeks'))
    .addOption(keep('monthly', 'months'))
    .option('--keep-within <duration>', 'keep everything younger than this, e.g. 14d')
    .option('--prune', 'delete blobs no remaining snapshot refers to (exclusive lock)')
    .option('--dry-run', 'say what would be forgotten, change nothing')
    .option('--target <name>', 'only this target (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (options: Record<string, unknown>) => {
      const config = loadConfig();
      const policy = policyFrom(options, config.backup.keep);
      const dryRun = Boolean(options.dryRun);
      const outcomes = await applyRetention(config, policy, {
        prune: Boolean(options.prune),
        dryRun,
        ...(options.target ? { only: options.target as string[] } : {}),
      });
      const results = outcomes.map(({ target, result, error }) =>
        error !== undefined || !result
          ? { target, error }
          : {
              target,
              kept: result.decisions
                .filter((d) => d.keep)
                .map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, reasons: d.reasons })),
              removed: result.removed,
              pruned: result.pruned,
            },
      );
      if (options.json) printJson({ dryRun, targets: results });
      else {
        for (const r of results) {
          if ('error' in r) process.stdout.write(`${r.target}: FAIL ${r.error}\n`);
          else {
            const pruned = r.pruned
              ? `, pruned ${r.pruned.blobs} blobs (${formatBytes(r.pruned.bytes)})`
              : '';
            process.stdout.write(
              `${r.target}: keeps ${r.kept.length}, ${dryRun ? 'would forget' : 'forgot'} ${r.removed.length}${pruned}\n`,
            );
          }
        }
      }
      if (outcomes.some((o) => o.error !== undefined)) process.exitCode = 1;
    });
}
