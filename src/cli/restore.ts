import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { RESTORE_PARTS } from '../vault/restore.ts';
import { acceptPartialRestore } from '../vault/restore-guards.ts';
import {
  type RestoreRequest,
  RestoreRequestError,
  restoreFromTargets,
  restoreParts,
} from '../vault/restore-request.ts';
import { momentRestoreApplies, restoreToMoment } from '../vault/restore-to-moment.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';
import { progressPrinter } from './progress.ts';
import { UsageError } from './usage-error.ts';

type RestoreFlags = Omit<RestoreRequest, 'ref' | 'onProgress'> & {
  yes?: boolean;
  json?: boolean;
  toTime?: string;
  acceptPartial?: boolean;
};

/** --accept-partial: the marks of an unfinished restore cleared, so `up` serves what it left. */
async function acceptPartial(flags: RestoreFlags): Promise<void> {
  const accepted = await acceptPartialRestore(loadConfig(), {
    ...(flags.toDatabase ? { toDatabase: flags.toDatabase } : {}),
    ...(flags.toDir ? { toDir: flags.toDir } : {}),
  });
  if (flags.json) return printJson({ accepted: accepted ?? null });
  process.stdout.write(
    accepted
      ? `Accepted what the unfinished restore of snapshot ${accepted.snapshot.slice(0, 12)} left in ${accepted.where.join(', ')}: trendgen up serves it now.${accepted.objectsMissing ? ` ${accepted.objectsMissing} objects the restored rows refer to never arrived: their rows are marked purged.` : ''}\n`
      : 'No destination carries the mark of an unfinished restore: there is nothing to accept.\n',
  );
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description(
      'Restore a snapshot (an id, a unique prefix, or latest). Into empty places with no flag; over live data only with --in-place --yes; never while the service runs on them. On a bare machine it starts the embedded PostgreSQL and Redis first. A failed restore leaves its places marked and trendgen up refuses them: run the restore again, or keep what it left with --accept-partial.',
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
    .option(
      '--target <name>',
      'read from this target: local, s3 or a BACKUP_OFFSITE_TARGETS name (latest is then the newest there)',
    )
    .option(
      '--accept-older',
      'latest: when the newest snapshot is damaged or missing, restore the newest good one instead',
    )
    .option(
      '--accept-partial',
      'restore nothing: accept what an unfinished restore left (in the service, or --to-database/--to-dir) and clear its marks',
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (ref: string | undefined, flags: RestoreFlags) => {
      if (flags.acceptPartial) {
        if (ref !== undefined) throw new UsageError('--accept-partial restores nothing: give no snapshot.');
        return await acceptPartial(flags);
      }
      if (flags.inPlace && !flags.yes)
        throw new UsageError('--in-place replaces live data: add --yes to confirm.');
      if (flags.toTime !== undefined) return await restoreMoment(ref, flags);
      if (ref === undefined)
        throw new UsageError(
          'Give the snapshot to restore: an id, a prefix, or latest; or a moment with --to-time.',
        );
      if (ref === 'latest' && !flags.only && !flags.toDatabase && !flags.toDir) {
        // With continuous protection, latest is the newest moment every source can be restored to (I8, I11).
        if (await momentRestoreApplies(loadConfig(), flags.target))
          return await restoreMoment(undefined, flags);
      }
      const { yes: _yes, json, acceptPartial: _accept, ...request } = flags;
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

async function restoreMoment(ref: string | undefined, flags: RestoreFlags): Promise<void> {
  if (ref !== undefined)
    throw new UsageError('--to-time restores a moment, not a snapshot: leave out the snapshot.');
  if (flags.only || flags.toDatabase || flags.toDir)
    throw new UsageError(
      '--to-time restores onto the embedded PostgreSQL and the object store: leave out --only, --to-database and --to-dir.',
    );
  const time = flags.toTime === undefined ? undefined : new Date(flags.toTime);
  if (time && (!/^\d{4}-\d\d-\d\d/.test(flags.toTime!) || Number.isNaN(time.getTime())))
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
  // Also with --json: a restore that goes back further than the newest timeline must be seen by whoever ran it.
  if (report.notice) process.stderr.write(`trendgen: ${report.notice}\n`);
  // A restored row whose object is in no backup fails the restore, in JSON too (a script must see it).
  if (report.objects.missing.length) {
    process.stderr.write(
      `trendgen: ${report.objects.missing.length} object(s) the restored rows refer to are in no backup: ${report.objects.missing.slice(0, 5).join(', ')}. Run trendgen check, and restore an earlier moment with --to-time if they are needed.\n`,
    );
    process.exitCode = 1;
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
  if (report.objects.unfinished.length)
    process.stdout.write(
      `${report.objects.unfinished.length} upload(s) killed before their object reached the backups were never acknowledged: their rows are marked deleted.\n`,
    );
}
