import { statfs } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { backupFreshness } from '../vault/catalog.ts';
import { existingAncestor } from './doctor/storage.ts';

/** The folders whose disks the service fills, by the name the doctor gives them. */
function watchedFolders(config: Config): Array<[string, string]> {
  const folders: Array<[string, string]> = [
    ['data_dir', config.dataDir],
    ['backup_dir', config.backup.dir],
    ['prompts_dir', config.promptsDir],
  ];
  if (config.storageUrl.startsWith('file:')) folders.push(['objects', fileURLToPath(config.storageUrl)]);
  return folders;
}

/**
 * What the alert rules watch that needs the configuration: backup staleness by the catalog's one rule (so
 * Prometheus, /readyz, doctor and the webhook alerts agree, I10) and the free space under each folder.
 */
export function registerHealthMetrics(registry: Registry, sql: Sql, config: Config): void {
  new Gauge({
    name: 'trendgen_backup_stale',
    help: 'Per configured target: 1 when no backup ever reached it or the last one is older than twice BACKUP_SCHEDULE allows, else 0.',
    labelNames: ['target'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const { target, stale } of (await backupFreshness(sql, config)).targets)
          this.set({ target }, stale ? 1 : 0);
      } catch (error) {
        // A database not migrated as far as the backup catalog reports nothing, like the catalog's other gauges.
        if ((error as { code?: string }).code !== '42P01') throw error;
      }
    },
  });
  const space = async () =>
    await Promise.all(
      watchedFolders(config).map(async ([dir, folder]) => {
        const fs = await statfs(await existingAncestor(folder));
        // bavail, not bfree: blocks reserved for root are no use to an unprivileged service (as in doctor).
        return { labels: { dir, path: folder }, avail: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize };
      }),
    );
  new Gauge({
    name: 'trendgen_filesystem_avail_bytes',
    help: 'Bytes free for the service on the disk of each folder (DATA_DIR, BACKUP_DIR, PROMPTS_DIR, a file object store).',
    labelNames: ['dir', 'path'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const { labels, avail } of await space()) this.set(labels, avail);
    },
  });
  new Gauge({
    name: 'trendgen_filesystem_size_bytes',
    help: 'Size in bytes of the disk of each folder.',
    labelNames: ['dir', 'path'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const { labels, size } of await space()) this.set(labels, size);
    },
  });
}
