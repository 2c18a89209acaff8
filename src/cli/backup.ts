import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { formatBytes } from '../lib/format.ts';
import { runBackup } from '../vault/backup.ts';
import { recordedRun } from '../vault/catalog.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';
import { progressPrinter } from './progress.ts';

export function backupCommand(): Command {
  return new Command('backup')
    .description(
      'Take one snapshot of PostgreSQL, Redis, prompts and objects, and store it on every target (BACKUP_DIR, BACKUP_S3_URI, BACKUP_OFFSITE_TARGETS).',
    )
    .option('--tag <tag>', 'label the snapshot (repeatable)', collect)
    .option(
      '--target <name>',
      'only this target: local, s3 or a BACKUP_OFFSITE_TARGETS name (repeatable)',
      collect,
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { tag?: string[]; target?: string[]; json?: boolean }) => {
      const config = loadConfig();
      const services = await connectServices(config);
      const sql = openDatabase(services.databaseUrl, { max: 2 });
      try {
        await migrate(sql);
        const progress = progressPrinter({ json: options.json });
        const result = await recordedRun(sql, options.tag ?? [], () =>
          runBackup({
            config,
            sql,
            databaseUrl: services.databaseUrl,
            redisUrl: services.redisUrl,
            objects: createBlobStore(config.storageUrl, config.s3),
            tags: options.tag,
            targets: options.target,
            onProgress: progress,
          }),
        ).finally(() => progress.finish());
        if (options.json) printJson(result);
        else {
          process.stdout.write(`${result.snapshotId}\n`);
          const width = Math.max(6, ...result.targets.map((t) => t.name.length));
          for (const t of result.targets) {
            process.stderr.write(
              `  ${t.name.padEnd(width)} ${t.ok ? `ok, ${formatBytes(t.bytesAdded ?? 0)} added` : `FAILED: ${t.error}`}\n`,
            );
          }
          for (const s of result.skipped)
            process.stderr.write(`  skipped ${s.source}/${s.path}: ${s.reason}\n`);
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
