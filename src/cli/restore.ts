import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { RESTORE_PARTS } from '../vault/restore.ts';
import {
  type RestoreRequest,
  RestoreRequestError,
  restoreFromTargets,
  restoreParts,
} from '../vault/restore-request.ts';
import { printJson, UsageError } from './context.ts';
import { collect } from './options.ts';
import { progressPrinter } from './progress.ts';

type RestoreFlags = Omit<RestoreRequest, 'ref' | 'onProgress'> & { yes?: boolean; json?: boolean };

export function restoreCommand(): Command {
  return new Command('restore')
    .description(
      'Restore a snapshot (an id, a unique prefix, or latest). Into empty places with no flag; over live data only with --in-place --yes. On a bare machine it starts the embedded PostgreSQL and Redis first.',
    )
    .argument('<snapshot>', 'snapshot id, prefix, or latest')
    .option('--only <parts>', `comma-separated: ${RESTORE_PARTS.join(',')}`, collect)
    .option('--to-database <url>', 'restore PostgreSQL into this database instead (created when missing)')
    .option('--to-dir <dir>', 'restore prompts and objects under this folder instead')
    .option('--in-place', 'replace live data (needs --yes)')
    .option('--yes', 'confirm --in-place')
    .option('--target <name>', 'read from this target: local or s3')
    .option('--json', 'one JSON document on stdout')
    .action(async (ref: string, flags: RestoreFlags) => {
      if (flags.inPlace && !flags.yes)
        throw new UsageError('--in-place replaces live data: add --yes to confirm.');
      const { yes: _yes, json, ...request } = flags;
      const progress = progressPrinter({ json });
      let outcome: Awaited<ReturnType<typeof restoreFromTargets>>;
      try {
        restoreParts(request); // a wrong --only is a usage error before any configuration is read
        outcome = await restoreFromTargets(loadConfig(), { ...request, ref, onProgress: progress });
      } catch (error) {
        if (error instanceof RestoreRequestError) throw new UsageError(error.message);
        throw error;
      } finally {
        progress.finish();
      }
      const { snapshot } = outcome;
      if (outcome.kind === 'classic') {
        if (json) printJson({ snapshot: { id: snapshot.id, time: snapshot.time }, classic: outcome.result });
        else
          process.stdout.write(
            `Restored the imported classic backup ${snapshot.id.slice(0, 12)} of ${snapshot.time}.\n`,
          );
        return;
      }
      const { report, parts } = outcome;
      if (json) return printJson(report);
      process.stdout.write(
        `Restored snapshot ${snapshot.id.slice(0, 12)} of ${snapshot.time} (${parts.join(', ')}) in ${(report.durationMs / 1000).toFixed(1)} s; verified against the backup's facts.\n`,
      );
      const kept = (report.parts.secrets?.kept ?? []) as string[];
      if (kept.length)
        process.stdout.write(
          `Kept the secrets already here that differ from the snapshot's: ${kept.join(', ')} (--in-place --yes replaces them).\n`,
        );
      if (report.deletionsReapplied)
        process.stdout.write(
          `Re-applied the data deletions of ${report.deletionsReapplied} user(s) made after the snapshot.\n`,
        );
    });
}
