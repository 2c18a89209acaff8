import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { RESTORE_PARTS } from '../vault/restore.ts';
import {
  type RestoreRequest,
  RestoreRequestError,
  restoreFromTargets,
  restoreParts,
} from '../vault/restore-request.ts';
import { restoreToMoment } from '../vault/restore-to-moment.ts';
import { printJson, UsageError } from './context.ts';
import { collect } from './options.ts';
import { progressPrinter } from './progress.ts';

type RestoreFlags = Omit<RestoreRequest, 'ref' | 'onProgress'> & {
  yes?: boolean;
  json?: boolean;
  toTime?: string;
};

export function restoreCommand(): Command {
  return new Command('restore')
    .description(
      'Restore a snapshot (an id, a unique prefix, or latest). Into empty places with no flag; over live data only with --in-place --yes. On a bare machine it starts the embedded PostgreSQL and Redis first.',
    )
    .argument('[snapshot]', 'snapshot id, prefix, or latest')
    .option(
      '--to-time <time>',
      'restore PostgreSQL to this moment (ISO 8601, e.g. 2026-12-02T14:02:00Z) from the base backups and WAL of continuous protection, with the objects its rows refer to',
    )
    .option('--only <parts>', `comma-separated: ${RESTORE_PARTS.join(',')}`, collect)
    .option('--to-database <url>', 'restore PostgreSQL into this database instead (created when missing)')
    .option('--to-dir <dir>', 'restore prompts and objects under this folder instead')
    .option('--in-place', 'replace live data (needs --yes)')
    .option('--yes', 'confirm --in-place')
    .option('--target <name>', 'read from this target: local or s3')
    .option('--json', 'one JSON document on stdout')
    .action(async (ref: string | undefined, flags: RestoreFlags) => {
      if (flags.inPlace && !flags.yes)
        throw new UsageError('--in-place replaces live data: add --yes to confirm.');
      if (flags.toTime !== undefined) return await restoreMoment(ref, flags);
      if (!ref) throw new UsageError('Name a snapshot (an id, a prefix, or latest), or give --to-time.');
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
      if (report.deletionsReapplied)
        process.stdout.write(
          `Re-applied the data deletions of ${report.deletionsReapplied} user(s) made after the snapshot.\n`,
        );
    });
}

async function restoreMoment(ref: string | undefined, flags: RestoreFlags): Promise<void> {
  if (ref !== undefined)
    throw new UsageError('--to-time restores a moment, not a snapshot: leave out the snapshot.');
  if (flags.only || flags.toDatabase || flags.toDir)
    throw new UsageError(
      '--to-time restores onto the embedded PostgreSQL and the object store: leave out --only, --to-database and --to-dir.',
    );
  const time = new Date(flags.toTime!);
  if (!/^\d{4}-\d\d-\d\d/.test(flags.toTime!) || Number.isNaN(time.getTime()))
    throw new UsageError(
      `--to-time ${JSON.stringify(flags.toTime)} is not an ISO 8601 time such as 2026-12-02T14:02:00Z.`,
    );
  const progress = progressPrinter({ json: flags.json });
  let report: Awaited<ReturnType<typeof restoreToMoment>>;
  try {
    report = await restoreToMoment(loadConfig(), {
      time,
      inPlace: Boolean(flags.inPlace),
      ...(flags.target ? { target: flags.target } : {}),
      onProgress: (phase, detail) => progress(phase, detail),
    });
  } finally {
    progress.finish();
  }
  if (flags.json) return printJson(report);
  const { postgres } = report;
  process.stdout.write(
    `Restored PostgreSQL to ${postgres.recoveredTo ?? 'the end of its base backup'} (base backup of ${postgres.baseBackup.time}, ${postgres.walFiles} WAL files replayed) in ${(report.durationMs / 1000).toFixed(1)} s.\n`,
  );
  if (report.movedAside)
    process.stdout.write(`The data directory it replaced is kept in ${report.movedAside}.\n`);
  if (report.deletionsReapplied)
    process.stdout.write(
      `Re-applied the data deletions of ${report.deletionsReapplied} user(s) made after that moment.\n`,
    );
  process.stdout.write(
    `Objects: ${report.objects.referenced} referenced, ${report.objects.restored} restored from the vault.\n`,
  );
  if (report.objects.missing.length) {
    process.stderr.write(
      `trendgen: ${report.objects.missing.length} object(s) the restored rows refer to are in no snapshot: ${report.objects.missing.slice(0, 5).join(', ')}.\n`,
    );
    process.exitCode = 1;
  }
}
