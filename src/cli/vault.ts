import path from 'node:path';
import { Command, Option } from 'commander';
import { FileBlobStore } from '../blobstore/file.ts';
import { createBlobStore } from '../blobstore/index.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { formatBytes } from '../lib/format.ts';
import { runBackup } from '../vault/backup.ts';
import { recordRunEnd, recordRunStart } from '../vault/catalog.ts';
import { parseDuration, type RetentionPolicy, runForget } from '../vault/forget.ts';
import type { Lock, Repository } from '../vault/repository/index.ts';
import { RESTORE_PARTS, type RestorePart, resolveSnapshot, runRestore } from '../vault/restore.ts';
import { createDatabaseIfMissing } from '../vault/sources/postgres.ts';
import { loadSnapshots, openRepository, resolveTargets, type Target } from '../vault/targets.ts';
import { printJson, UsageError } from './context.ts';
import { progressPrinter } from './progress.ts';

const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(',').filter(Boolean),
];

/** The first target whose repository opens (restore, check and snapshots read from one). */
async function openFirst(config: Config, only?: string[]): Promise<{ target: Target; repo: Repository }> {
  const problems: string[] = [];
  for (const target of resolveTargets(config, only)) {
    try {
      return { target, repo: await openRepository(target, config.backup.password) };
    } catch (error) {
      problems.push(`${target.name}: ${(error as Error).message}`);
    }
  }
  throw new Error(`No backup target could be opened. ${problems.join(' ')}`);
}

function backupCommand(): Command {
  return new Command('backup')
    .description(
      'Take one snapshot of PostgreSQL, Redis, prompts and objects, and store it on every target (BACKUP_DIR, BACKUP_S3_URI).',
    )
    .option('--tag <tag>', 'label the snapshot (repeatable)', collect)
    .option('--target <name>', 'only this target: local or s3 (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { tag?: string[]; target?: string[]; json?: boolean }) => {
      const config = loadConfig();
      const services = await connectServices(config);
      const sql = openDatabase(services.databaseUrl, { max: 2 });
      try {
        await migrate(sql);
        const runId = await recordRunStart(sql, options.tag ?? []);
        let result: Awaited<ReturnType<typeof runBackup>> | undefined;
        const progress = progressPrinter({ json: options.json });
        try {
          result = await runBackup({
            config,
            sql,
            databaseUrl: services.databaseUrl,
            redisUrl: services.redisUrl,
            objects: createBlobStore(config.storageUrl, config.s3),
            tags: options.tag,
            targets: options.target,
            onProgress: progress,
          });
          progress.finish();
        } catch (error) {
          progress.finish();
          await recordRunEnd(sql, runId, { targets: [], bytesAdded: 0, error: (error as Error).message });
          throw error;
        }
        await recordRunEnd(sql, runId, {
          snapshotId: result.snapshotId,
          targets: result.targets,
          bytesAdded: result.bytesAdded,
        });
        if (options.json) printJson(result);
        else {
          process.stdout.write(`${result.snapshotId}\n`);
          for (const t of result.targets) {
            process.stderr.write(
              `  ${t.name.padEnd(6)} ${t.ok ? `ok, ${formatBytes(t.bytesAdded ?? 0)} added` : `FAILED: ${t.error}`}\n`,
            );
          }
          process.stderr.write(`  took ${(result.durationMs / 1000).toFixed(1)} s\n`);
        }
        const failed = result.targets.filter((t) => !t.ok);
        if (failed.length) {
          process.stderr.write(
            `trendgen: the snapshot is not on ${failed.map((t) => t.name).join(', ')}; it will be copied there by the next backup.\n`,
          );
          process.exitCode = 1;
        }
      } finally {
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}

function snapshotsCommand(): Command {
  return new Command('snapshots')
    .description('List snapshots with their time, tags, contents and the targets that hold them.')
    .option('--target <name>', 'only this target (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { target?: string[]; json?: boolean }) => {
      const config = loadConfig();
      const rows = new Map<
        string,
        { id: string; time: string; tags: string[]; targets: string[]; facts: unknown; stats: unknown }
      >();
      const unreachable: Array<{ target: string; error: string }> = [];
      for (const target of resolveTargets(config, options.target)) {
        try {
          const repo = await openRepository(target, config.backup.password);
          for (const snapshot of await loadSnapshots(repo)) {
            const row = rows.get(snapshot.id) ?? {
              id: snapshot.id,
              time: snapshot.time,
              tags: snapshot.tags,
              targets: [],
              facts: snapshot.facts,
              stats: snapshot.stats,
            };
            row.targets.push(target.name);
            rows.set(snapshot.id, row);
          }
        } catch (error) {
          unreachable.push({ target: target.name, error: (error as Error).message });
        }
      }
      const list = [...rows.values()].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
      if (options.json) return printJson({ snapshots: list, unreachable });
      for (const u of unreachable) process.stderr.write(`trendgen: target ${u.target}: ${u.error}\n`);
      process.stdout.write(
        `${'ID'.padEnd(14)}${'TIME'.padEnd(22)}${'TARGETS'.padEnd(12)}${'OBJECTS'.padEnd(9)}TAGS\n`,
      );
      for (const s of list) {
        const objects = (s.facts as { objects?: { count?: number } } | undefined)?.objects?.count ?? '-';
        process.stdout.write(
          `${s.id.slice(0, 12).padEnd(14)}${s.time.slice(0, 19).replace('T', ' ').padEnd(22)}${s.targets.join(',').padEnd(12)}${String(objects).padEnd(9)}${s.tags.join(',')}\n`,
        );
      }
      if (unreachable.length) process.exitCode = 1;
    });
}

function restoreCommand(): Command {
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
    .action(
      async (
        ref: string,
        options: {
          only?: string[];
          toDatabase?: string;
          toDir?: string;
          inPlace?: boolean;
          yes?: boolean;
          target?: string;
          json?: boolean;
        },
      ) => {
        if (options.inPlace && !options.yes)
          throw new UsageError('--in-place replaces live data: add --yes to confirm.');
        const bad = (options.only ?? []).filter((p) => !(RESTORE_PARTS as readonly string[]).includes(p));
        if (bad.length)
          throw new UsageError(`--only takes ${RESTORE_PARTS.join(', ')}; not ${bad.join(', ')}.`);
        let parts = (options.only as RestorePart[] | undefined) ?? [...RESTORE_PARTS];
        if (options.toDir && !options.only)
          parts = options.toDatabase ? ['postgres', 'prompts', 'objects'] : ['prompts', 'objects'];
        const config = loadConfig();
        const { repo } = await openFirst(config, options.target ? [options.target] : undefined);
        const snapshot = await resolveSnapshot(repo, ref);
        if (snapshot.trees.classic_sql || snapshot.trees.classic_data) {
          // An imported classic archive: its SQL is the classic service's schema, so it goes where it is told.
          if (!options.toDatabase && !options.toDir) {
            throw new UsageError(
              'This snapshot is an imported classic backup: give --to-database URL and/or --to-dir DIR.',
            );
          }
          const { restoreClassicSnapshot } = await import('../vault/classic/index.ts');
          const result = await restoreClassicSnapshot(repo, snapshot, {
            ...(options.toDatabase ? { databaseUrl: options.toDatabase } : {}),
            ...(options.toDir ? { toDir: path.resolve(options.toDir) } : {}),
          });
          if (options.json)
            printJson({ snapshot: { id: snapshot.id, time: snapshot.time }, classic: result });
          else
            process.stdout.write(
              `Restored the imported classic backup ${snapshot.id.slice(0, 12)} of ${snapshot.time}.\n`,
            );
          return;
        }
        const needsServices = (parts.includes('postgres') && !options.toDatabase) || parts.includes('redis');
        const services = needsServices
          ? await connectServices(config, {
              postgres: parts.includes('postgres') && !options.toDatabase,
              redis: parts.includes('redis'),
            })
          : undefined;
        try {
          if (options.toDatabase) {
            const target = new URL(options.toDatabase);
            const name = decodeURIComponent(target.pathname.slice(1));
            target.pathname = '/postgres';
            await createDatabaseIfMissing(target.toString(), name);
          }
          const progress = progressPrinter({ json: options.json });
          const report = await runRestore(repo, snapshot, {
            parts,
            databaseUrl: options.toDatabase ?? services?.databaseUrl ?? '',
            redisUrl: services?.redisUrl ?? '',
            promptsDir: options.toDir ? path.resolve(options.toDir, 'prompts') : config.promptsDir,
            objects: options.toDir
              ? new FileBlobStore(path.resolve(options.toDir, 'objects'))
              : createBlobStore(config.storageUrl, config.s3),
            inPlace: Boolean(options.inPlace),
            scratchDir: path.join(config.dataDir, 'tmp', `restore-${snapshot.id.slice(0, 12)}`),
            onProgress: progress,
          }).finally(() => progress.finish());
          if (options.json) printJson(report);
          else {
            process.stdout.write(
              `Restored snapshot ${snapshot.id.slice(0, 12)} of ${snapshot.time} (${parts.join(', ')}) in ${(report.durationMs / 1000).toFixed(1)} s; verified against the backup's facts.\n`,
            );
            if (report.deletionsReapplied)
              process.stdout.write(
                `Re-applied the data deletions of ${report.deletionsReapplied} user(s) made after the snapshot.\n`,
              );
          }
        } finally {
          await services?.release();
        }
      },
    );
}

const UNLOCKED_CHECK_WARNING =
  'checked without a lock because none could be written (the disk is full or read-only): a prune running at the same time could make blobs look missing';

/**
 * A plain check only reads, so a target whose disk is full or read-only — exactly when an operator most
 * needs to know whether the repository is whole — is still checked, without its shared lock. Repair writes,
 * so it still needs its exclusive lock.
 */
async function lockForCheck(repo: Repository, repair: boolean): Promise<Lock | undefined> {
  try {
    return await repo.lock({ exclusive: repair });
  } catch (error) {
    const code = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (repair || !['ENOSPC', 'EDQUOT', 'EROFS'].includes(code ?? '')) throw error;
    return undefined;
  }
}

function checkCommand(): Command {
  return new Command('check')
    .description(
      'Verify the repository on each target: structure, and with --read-data every blob re-hashed. Names every damaged blob and the files it breaks.',
    )
    .option('--read-data', 're-read and re-hash every blob')
    .option(
      '--repair',
      'move damaged blobs and unreadable snapshot records aside into quarantine/ (exclusive lock), so that the next backup stores that content again',
    )
    .option('--target <name>', 'only this target (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { readData?: boolean; repair?: boolean; target?: string[]; json?: boolean }) => {
      const config = loadConfig();
      const results: Array<Record<string, unknown>> = [];
      let failed = false;
      for (const target of resolveTargets(config, options.target)) {
        try {
          const repo = await openRepository(target, config.backup.password);
          const lock = await lockForCheck(repo, Boolean(options.repair));
          try {
            const report = await repo.check({
              readData: Boolean(options.readData),
              repair: Boolean(options.repair),
            });
            results.push({
              target: target.name,
              ...report,
              unreferencedBlobs: report.unreferencedBlobs?.length,
              ...(lock ? {} : { warning: UNLOCKED_CHECK_WARNING }),
            });
            if (!report.ok) failed = true;
            if (!lock && !options.json) process.stderr.write(`${target.name}: ${UNLOCKED_CHECK_WARNING}\n`);
          } finally {
            await lock?.release();
          }
        } catch (error) {
          failed = true;
          results.push({ target: target.name, ok: false, error: (error as Error).message });
        }
      }
      if (options.json) printJson({ ok: !failed, targets: results });
      else {
        for (const r of results) {
          if (r.error) {
            process.stdout.write(`${r.target}: FAIL ${r.error}\n`);
            continue;
          }
          process.stdout.write(
            `${r.target}: ${r.ok ? 'OK' : 'FAIL'} — ${r.snapshots} snapshots, ${r.trees} trees, ${r.blobs} blobs${options.readData ? ', every blob re-hashed' : ''}\n`,
          );
          for (const kind of ['damagedSnapshots', 'damagedBlobs', 'missingBlobs'] as const) {
            for (const problem of (r[kind] as Array<{
              id: string;
              reason: string;
              paths?: Array<{ snapshot: string; path: string }>;
            }>) ?? []) {
              process.stdout.write(
                `  ${kind === 'missingBlobs' ? 'missing' : 'damaged'} ${problem.id}: ${problem.reason}\n`,
              );
              for (const p of problem.paths ?? [])
                process.stdout.write(`    breaks ${p.path} in snapshot ${p.snapshot.slice(0, 12)}\n`);
            }
          }
        }
      }
      if (failed) process.exitCode = 1;
    });
}

function forgetCommand(): Command {
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
      const flags = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepWithin'].filter(
        (k) => options[k] !== undefined,
      );
      for (const k of flags.filter((f) => f !== 'keepWithin')) {
        if (!Number.isInteger(options[k]) || (options[k] as number) < 0)
          throw new UsageError(
            `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} takes a whole number.`,
          );
      }
      let policy: RetentionPolicy;
      try {
        policy = flags.length
          ? {
              last: options.keepLast as number | undefined,
              hourly: options.keepHourly as number | undefined,
              daily: options.keepDaily as number | undefined,
              weekly: options.keepWeekly as number | undefined,
              monthly: options.keepMonthly as number | undefined,
              ...(options.keepWithin ? { withinMs: parseDuration(options.keepWithin as string) } : {}),
            }
          : { ...config.backup.keep };
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const results: Array<Record<string, unknown>> = [];
      let failed = false;
      for (const target of resolveTargets(config, options.target as string[] | undefined)) {
        try {
          const repo = await openRepository(target, config.backup.password);
          const result = await runForget(repo, policy, {
            prune: Boolean(options.prune),
            dryRun: Boolean(options.dryRun),
          });
          results.push({
            target: target.name,
            kept: result.decisions
              .filter((d) => d.keep)
              .map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, reasons: d.reasons })),
            removed: result.removed,
            pruned: result.pruned,
          });
        } catch (error) {
          failed = true;
          results.push({ target: target.name, error: (error as Error).message });
        }
      }
      if (options.json) printJson({ dryRun: Boolean(options.dryRun), targets: results });
      else {
        for (const r of results) {
          if (r.error) process.stdout.write(`${r.target}: FAIL ${r.error}\n`);
          else {
            const pruned = r.pruned as { blobs: number; bytes: number } | undefined;
            process.stdout.write(
              `${r.target}: keeps ${(r.kept as unknown[]).length}, ${options.dryRun ? 'would forget' : 'forgot'} ${(r.removed as unknown[]).length}${pruned ? `, pruned ${pruned.blobs} blobs (${formatBytes(pruned.bytes)})` : ''}\n`,
            );
          }
        }
      }
      if (failed) process.exitCode = 1;
    });
}

export function vaultCommands(): Command[] {
  return [backupCommand(), snapshotsCommand(), restoreCommand(), checkCommand(), forgetCommand()];
}
