import { randomBytes } from 'node:crypto';
import { stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../../lib/format.ts';
import { describeTargets } from '../../vault/targets.ts';
import { probeStore } from './context.ts';
import { type DoctorCheck, errorMessage, fail, ok, warn } from './types.ts';

const GiB = 1024 ** 3;

/** The folder itself, or its closest existing parent: BACKUP_DIR does not exist before the first backup, yet its disk does. */
export async function existingAncestor(dir: string): Promise<string> {
  let current = path.resolve(dir);
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = path.dirname(current);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) throw error;
      current = parent;
    }
  }
}

function diskCheck(id: string, variable: string, dir: (ctx: Parameters<DoctorCheck['run']>[0]) => string) {
  return {
    id,
    run: async (ctx) => {
      const folder = dir(ctx);
      const fs = await statfs(await existingAncestor(folder));
      // bavail, not bfree: blocks reserved for root are no use to an unprivileged service.
      const free = fs.bavail * fs.bsize;
      const total = fs.blocks * fs.bsize;
      const percent = total > 0 ? (100 * fs.bavail) / fs.blocks : 0;
      const summary = `${formatBytes(free)} free of ${formatBytes(total)} (${percent.toFixed(percent < 10 ? 1 : 0)} %) for ${variable} ${folder}`;
      const hint = 'free space, or grow the disk: a full disk stops PostgreSQL, Redis and backups at once';
      if (percent < 5) return fail(summary, hint);
      if (percent < 15 || free < 2 * GiB) return warn(summary, hint);
      return ok(summary);
    },
  } satisfies DoctorCheck;
}

export function storageChecks(): DoctorCheck[] {
  return [
    diskCheck('disk.data_dir', 'DATA_DIR', (ctx) => ctx.config.dataDir),
    diskCheck('disk.backup_dir', 'BACKUP_DIR', (ctx) => ctx.config.backup.dir),
    {
      id: 'backup.same_device',
      run: async (ctx) => {
        const { dataDir } = ctx.config;
        const backupDir = ctx.config.backup.dir;
        const [data, backups] = await Promise.all([
          existingAncestor(dataDir).then((dir) => stat(dir)),
          existingAncestor(backupDir).then((dir) => stat(dir)),
        ]);
        if (data.dev !== backups.dev) return ok(`BACKUP_DIR ${backupDir} is on another device than DATA_DIR`);
        const offsite = describeTargets(ctx.config)
          .filter((target) => target.offsite)
          .map((target) => target.url)
          .join(', ');
        return warn(
          `BACKUP_DIR ${backupDir} is on the same device as DATA_DIR ${dataDir}: a dead disk takes the data and its backups together${offsite ? ` (only the offsite copies at ${offsite} would remain)` : ''}`,
          offsite
            ? 'put BACKUP_DIR on another disk'
            : 'put BACKUP_DIR on another disk, and set BACKUP_S3_URI or BACKUP_OFFSITE_TARGETS for an offsite copy',
        );
      },
    },
    {
      id: 'objects.writable',
      run: async (ctx) => {
        const store = probeStore(ctx.config.storageUrl, ctx.config.s3);
        // A random key: two doctors at once never delete each other's probe, and no real object is touched.
        const key = `health/doctor-${randomBytes(8).toString('hex')}`;
        const body = Buffer.from(`trendgen doctor probe ${ctx.now.toISOString()}\n`);
        try {
          await store.put(key, body, { size: body.length });
          const head = await store.head(key);
          if (head?.size !== body.length) {
            return fail(
              `${store.location} accepted a probe but then reported it missing or of the wrong size`,
            );
          }
          await store.delete(key);
          return ok(`${store.location} is writable (a probe was written, read back and deleted)`);
        } catch (error) {
          return fail(
            `${store.location} is not writable: ${errorMessage(error)}`,
            'check STORAGE_URL, the folder permissions or the bucket credentials: uploads and generations fail until then',
          );
        } finally {
          await store.close?.().catch(() => {});
        }
      },
    },
  ];
}
