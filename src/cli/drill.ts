import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { embeddedPostgres } from '../embedded/connect.ts';
import { recordDrill } from '../vault/catalog.ts';
import { type DrillReport, refusedDrill, runDrill } from '../vault/drill.ts';
import { RepositoryError } from '../vault/repository/index.ts';
import { resolveSnapshot } from '../vault/restore.ts';
import { openFirstTarget } from '../vault/targets.ts';
import { runMomentDrill } from '../vault/wal/drill-moment.ts';
import { printJson } from './context.ts';
import { UsageError } from './usage-error.ts';

export function drillCommand(): Command {
  return new Command('drill')
    .description(
      'Prove a snapshot restorable: restore it into a scratch PostgreSQL, Redis and folder, verify rows, digests, objects, prompt history and every heap and index (pg_amcheck --heapallindexed), report PASS or FAIL and the recovery time, record it, clean up.',
    )
    .argument('[snapshot]', 'snapshot id, prefix, or latest', 'latest')
    .option('--target <name>', 'drill from this target: local, s3 or a BACKUP_OFFSITE_TARGETS name')
    .option(
      '--moment [time]',
      'drill continuous protection instead: restore this moment (ISO 8601; default a random one in the window) from base backup and WAL into a scratch data directory and verify it',
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (ref: string, options: { target?: string; json?: boolean; moment?: string | true }) => {
      const config = loadConfig();
      const { target, repo } = await openFirstTarget(config, options.target ? [options.target] : undefined);
      const moment = typeof options.moment === 'string' ? new Date(options.moment) : undefined;
      if (moment && Number.isNaN(moment.getTime()))
        throw new UsageError(`--moment ${JSON.stringify(options.moment)} is not an ISO 8601 time.`);
      let report: DrillReport;
      try {
        report = options.moment
          ? await runMomentDrill(config, repo, moment)
          : await runDrill(config, repo, await resolveSnapshot(repo, ref));
      } catch (error) {
        if (!(error instanceof RepositoryError)) throw error;
        report = refusedDrill(ref, error);
      }
      const snapshot = report.snapshot;
      // The drill is recorded in the service's database when it can be reached; it never starts one for that.
      const databaseUrl = config.databaseUrl ?? embeddedPostgres(config).findRunning()?.url;
      if (databaseUrl) {
        const sql = openDatabase(databaseUrl, { max: 1 });
        try {
          await migrate(sql);
          await recordDrill(sql, target.name, report);
        } catch {
          // Recording is best effort: the verdict below is what matters.
        } finally {
          await sql.end({ timeout: 5 });
        }
      }
      if (options.json) printJson(report);
      else {
        process.stdout.write(
          `${report.status === 'passed' ? 'PASS' : 'FAIL'} ${options.moment ? 'moment' : `snapshot ${snapshot.id.slice(0, 12)}`}${snapshot.time ? ` of ${snapshot.time}: recovered in ${report.recoverySeconds} s` : ': not restorable'}\n`,
        );
        for (const check of report.checks)
          process.stdout.write(`  ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}\n`);
      }
      if (report.status !== 'passed') process.exitCode = 1;
    });
}
