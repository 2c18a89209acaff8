import { existsSync } from 'node:fs';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import { formatDuration } from '../../lib/format.ts';
import { ScheduleError, scheduleInterval } from '../../lib/schedule-interval.ts';
import { isBackupStale, latestFinishedRun, latestSuccessOn } from '../../vault/catalog.ts';
import { ledgerDebts } from '../../vault/ledger-queue.ts';
import { RepositoryError, RepositoryNotFoundError } from '../../vault/repository/index.ts';
import { backupKeyPath } from '../../vault/repository-key.ts';
import { describeTargets, openRepository, type TargetDescription } from '../../vault/targets.ts';
import { probeStore } from './context.ts';
import { type DoctorCheck, type DoctorContext, errorMessage, fail, ok, warn } from './types.ts';

/** The database when it has the given table; undefined when that table does not exist (not migrated yet). */
export async function databaseWith(ctx: DoctorContext, table: string): Promise<Sql | undefined> {
  const sql = await ctx.database();
  const [row] = await sql<Array<{ exists: boolean }>>`select to_regclass(${table}) is not null as exists`;
  return row!.exists ? sql : undefined;
}

const ago = (ctx: DoctorContext, at: Date) => `${formatDuration(ctx.now.getTime() - at.getTime())} ago`;

function freshCheck(name: string): DoctorCheck {
  return {
    id: `backup.${name}.fresh`,
    run: async (ctx) => {
      const schedule = ctx.config.backup.schedule;
      let interval: number | undefined;
      try {
        interval = scheduleInterval(schedule, ctx.now, 'BACKUP_SCHEDULE');
      } catch (error) {
        if (error instanceof ScheduleError) return fail(error.message, 'correct BACKUP_SCHEDULE');
        throw error;
      }
      const sql = await databaseWith(ctx, 'backup_runs');
      if (!sql) return warn('the backup catalog does not exist yet', 'run: trendgen migrate');
      const [success, latest] = await Promise.all([latestSuccessOn(sql, name), latestFinishedRun(sql)]);
      // A run that failed before reaching any target (the dump failed, say) failed for every target.
      const entry = latest?.targets.find((t) => t.name === name);
      const latestError =
        latest && (entry ? !entry.ok : latest.status === 'failed')
          ? (entry?.error ?? latest.error ?? 'no reason recorded')
          : undefined;
      if (!success) {
        return latestError
          ? fail(
              `no backup has ever reached ${name}; the latest run (${ago(ctx, latest!.finishedAt!)}) failed: ${latestError}`,
              `run: trendgen backup --target ${name}`,
            )
          : warn(`no backup has run to ${name} yet`, 'run: trendgen backup (the scheduler runs it on time)');
      }
      const age = ctx.now.getTime() - success.finishedAt!.getTime();
      const last = `last successful backup to ${name} ${ago(ctx, success.finishedAt!)} (snapshot ${success.snapshotId?.slice(0, 8) ?? '?'})`;
      if (interval === undefined) {
        return warn(
          `${last}; BACKUP_SCHEDULE is off, so backups run only when someone starts them`,
          'set BACKUP_SCHEDULE (default hourly: 0 * * * *)',
        );
      }
      if (isBackupStale(age, interval)) {
        return fail(
          `stale: ${last}, though BACKUP_SCHEDULE runs every ${formatDuration(interval)}${latestError ? `; the latest run failed: ${latestError}` : ''}`,
          `see the scheduler's log (trendgen scheduler), then: trendgen backup --target ${name}`,
        );
      }
      if (latestError) {
        return warn(
          `${last}, but the latest run failed: ${latestError}`,
          `run: trendgen backup --target ${name}`,
        );
      }
      return ok(last);
    },
  };
}

function repositoryCheck(target: TargetDescription): DoctorCheck {
  return {
    id: `backup.${target.name}.repository`,
    run: async (ctx) => {
      const store = probeStore(target.url, target.s3);
      try {
        const repo = await openRepository({ ...target, store }, ctx.config);
        const snapshots = await repo.listSnapshots();
        return ok(
          `${store.location} is readable: ${repo.encrypted ? 'encrypted' : 'not encrypted'}, ${snapshots.length} snapshot(s)`,
        );
      } catch (error) {
        if (error instanceof RepositoryNotFoundError) {
          return warn(
            `${store.location} holds no repository yet`,
            'the first backup creates it: trendgen backup',
          );
        }
        // Wrong or missing password, unreadable config: the repository's own sentence says what to do.
        if (error instanceof RepositoryError) return fail(error.message);
        return fail(`${store.location} cannot be read: ${errorMessage(error)}`);
      } finally {
        await store.close?.().catch(() => {});
      }
    },
  };
}

/** A deletion owed to a target's ledger this long is a warning, this long a failure (I3). */
const LEDGER_WARN_MS = 5 * 60_000;
const LEDGER_FAIL_MS = 60 * 60_000;

/** Every user-data deletion reaches every target's ledger, retried by the scheduler until written (I3). */
function ledgerCheck(name: string): DoctorCheck {
  return {
    id: `backup.${name}.ledger`,
    run: async (ctx) => {
      const sql = await databaseWith(ctx, 'deletion_ledger_writes');
      if (!sql) return warn('the deletion ledger queue does not exist yet', 'run: trendgen migrate');
      const [debt] = await ledgerDebts(sql, [name], ctx.now);
      if (!debt || debt.pending === 0) return ok(`every user-data deletion is in the ledger on ${name}`);
      const behind = `${debt.pending} user-data deletion(s) not yet in the ledger on ${name}, the oldest for ${formatDuration(debt.lagSeconds * 1000)}`;
      const why = debt.lastError ? `; the last attempt failed: ${debt.lastError}` : '';
      const fix = `the scheduler retries every minute (trendgen scheduler, or trendgen up); check that ${name} is reachable`;
      if (debt.lagSeconds * 1000 >= LEDGER_FAIL_MS) return fail(`${behind}${why}`, fix);
      if (debt.lagSeconds * 1000 >= LEDGER_WARN_MS) return warn(`${behind}${why}`, fix);
      return ok(`${behind}: on its way`);
    },
  };
}

export function backupChecks(config: Config): DoctorCheck[] {
  const targets = describeTargets(config);
  return [
    ...targets.map((target) => freshCheck(target.name)),
    ...targets.map(repositoryCheck),
    ...targets.map((target) => ledgerCheck(target.name)),
    {
      id: 'backup.offsite',
      run: async () => {
        const offsite = targets.filter((target) => target.offsite);
        if (offsite.length === 0) {
          return warn(
            'no offsite target: BACKUP_S3_URI and BACKUP_OFFSITE_TARGETS are unset, so losing this server loses its backups too',
            'set BACKUP_S3_URI or BACKUP_OFFSITE_TARGETS (and BACKUP_PASSWORD) for a copy somewhere else',
          );
        }
        const where = offsite.map((t) => `${t.name} (${t.url})`).join(', ');
        const states = offsite.map((t) => `backup.${t.name}.repository`).join(', ');
        return ok(`offsite copies go to ${where}: see ${states} for their state`);
      },
    },
    {
      id: 'backup.key',
      run: async (ctx) => keyCheck(ctx.config),
    },
    {
      id: 'backup.encryption',
      run: async (ctx) => encryptionCheck(ctx.config, targets),
    },
  ];
}

function encryptionCheck(config: Config, targets: TargetDescription[]) {
  const { password, allowUnencryptedOffsite } = config.backup;
  const offsite = targets.filter((target) => target.offsite);
  if (offsite.length === 0) {
    return ok(
      password
        ? 'backups are encrypted (BACKUP_PASSWORD)'
        : 'no offsite target; local backups are not encrypted',
    );
  }
  if (password) return ok('offsite backups are encrypted (BACKUP_PASSWORD)');
  if (allowUnencryptedOffsite) {
    return warn(
      `offsite backups to ${offsite.map((t) => t.url).join(', ')} are not encrypted: whoever reads a bucket reads every photo and prompt`,
      'set BACKUP_PASSWORD (a new repository is needed: an existing one keeps its encryption)',
    );
  }
  const settings = [...new Set(offsite.map((t) => t.setting))];
  return fail(
    `${settings.join(' and ')} ${settings.length > 1 ? 'are' : 'is'} set without BACKUP_PASSWORD: every backup is refused until offsite copies can be encrypted`,
    'set BACKUP_PASSWORD, or BACKUP_ALLOW_UNENCRYPTED_OFFSITE=true to accept plaintext copies',
  );
}

/**
 * Where the secret that opens the backups lives. An unencrypted repository's records are authenticated with a
 * key kept out of it; made on the data disk by default, it dies with that disk unless a copy is kept elsewhere.
 */
function keyCheck(config: Config) {
  if (config.backup.password) {
    return ok('the backups open with BACKUP_PASSWORD: keep a copy of it off this machine');
  }
  if (config.backup.key) return ok('the backups open with BACKUP_KEY, set in the environment');
  const file = backupKeyPath(config);
  if (!existsSync(file)) {
    return ok(`no backup has made its key yet; the first one writes ${file}`);
  }
  return warn(
    `the key that opens the unencrypted backups is only in ${file}, on the data disk: if that disk dies, the backups cannot be opened`,
    `keep a copy of its value off this machine and set it as BACKUP_KEY on a new one, or set BACKUP_PASSWORD`,
  );
}
