import path from 'node:path';
import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { nameConnections, openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { startLiveness } from '../lib/liveness.ts';
import { ObjectStore } from '../objects/store.ts';
import { createLogger } from '../ops/logger.ts';
import { objectStoreSyncOptions } from '../vault/stream/objects-sync.ts';
import { refuseMarkedPlaces, survivePostgresSocketRace, untilStopped } from './lifecycle.ts';

export function workerCommand(): Command {
  return new Command('worker')
    .description(
      'Run generation jobs from the queue: render with the image provider, store outputs, finish under a lease.',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'worker');
      survivePostgresSocketRace((message) => logger.warn(message));
      nameConnections('worker');
      await refuseMarkedPlaces(config);
      startLiveness(config.livenessTimeoutSeconds * 1000, config.livenessFile);
      // Loaded here, not at the top: sharp and BullMQ take a second to load, and other commands never need them.
      const { createProvider } = await import('../generation/providers/provider.ts');
      const { queueConnection } = await import('../generation/queue.ts');
      const { createGenerationWorker } = await import('../generation/worker.ts');
      const services = await connectServices(config);
      const sql = openDatabase(services.databaseUrl, { max: config.generation.concurrency + 2 });
      const connection = queueConnection(services.redisUrl);
      connection.on('error', () => {});
      try {
        await migrate(sql);
        const blobs = createBlobStore(config.storageUrl, config.s3);
        // BACKUP_SYNC: outputs are in the local backup target before the job finishes (a failure retries it).
        const spool = path.join(config.dataDir, 'tmp', 'worker');
        const objects = new ObjectStore(sql, blobs, spool, objectStoreSyncOptions(config, sql, blobs));
        const worker = createGenerationWorker({
          sql,
          connection,
          objects,
          provider: createProvider(config),
          logger,
          settings: {
            concurrency: config.generation.concurrency,
            leaseSeconds: config.generation.leaseSeconds,
            timeoutSeconds: config.generation.timeoutSeconds,
            maxAttempts: config.generation.maxAttempts,
            retryBaseMs: 1000,
            retryCapMs: 60_000,
          },
        });
        logger.info(
          { concurrency: config.generation.concurrency, provider: config.imageProvider },
          'worker started',
        );
        const reason = await untilStopped();
        logger.info({ reason }, 'stopping: finishing the jobs in hand');
        // A job cut short here is not lost: its lease expires and the reconciler queues it again.
        await Promise.race([
          worker.close(),
          new Promise((resolve) => setTimeout(resolve, config.generation.timeoutSeconds * 1000).unref()),
        ]);
      } finally {
        connection.disconnect();
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}
