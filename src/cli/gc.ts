import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { createLogger } from '../ops/logger.ts';
import { collectGarbage } from '../vault/object-gc.ts';
import { printJson } from './context.ts';

export function gcCommand(): Command {
  return new Command('gc')
    .description(
      'Run the collector once (the scheduler runs it at start and every OBJECT_GC_GRACE): remove the bytes of deleted objects that no snapshot retained on any target holds and that were deleted before the point-in-time window (BACKUP_PITR_WINDOW), blobs without a row, and crash leftovers older than OBJECT_GC_GRACE. To make deleted data go sooner, forget snapshots first (trendgen forget … --prune).',
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const services = await connectServices(config, { postgres: true, redis: false });
      const sql = openDatabase(services.databaseUrl, { max: 2 });
      const objects = createBlobStore(config.storageUrl, config.s3);
      try {
        await migrate(sql);
        const report = await collectGarbage({
          config,
          sql,
          databaseUrl: services.databaseUrl,
          objects,
          graceSeconds: config.backup.gcGraceSeconds,
          logger: createLogger(config.logLevel, 'gc'),
        });
        if (report.skipped) process.exitCode = 1;
        if (options.json) return printJson(report);
        const { tombstoned: t, orphans: o, leftovers: l } = report;
        process.stdout.write(
          `deleted objects: ${t.removed} removed (${t.bytes} bytes), ${t.keptBySnapshots} kept for retained snapshots; deleted before ${report.cutoff ?? 'unknown'} may go\n` +
            `orphans: ${o.removed} removed (${o.bytes} bytes)\nleftovers: ${l.removed} removed (${l.bytes} bytes)\n`,
        );
        if (report.skipped) process.stderr.write(`${report.skipped}.\n`);
      } finally {
        await objects.close?.();
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}
