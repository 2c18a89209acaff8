import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { startLiveness } from '../lib/liveness.ts';
import { createLogger, scrub } from '../ops/logger.ts';
import { streamsWal } from '../vault/protected-by.ts';
import { runObjectStream } from '../vault/stream/objects-stream.ts';
import { runProtect } from '../vault/wal/protect.ts';
import { survivePostgresSocketRace, untilStopped } from './lifecycle.ts';
import { logStreamEvent } from './object-stream.ts';

export function protectCommand(): Command {
  return new Command('protect')
    .description(
      'Run continuous protection: stream PostgreSQL’s WAL and every new object into every backup target (pg_receivewal with a replication slot; the recovery point is about a second old, or zero with BACKUP_SYNC=on) and take the base backups point-in-time restore starts from, on BACKUP_SCHEDULE. With BACKUP_DATABASE_PITR=cloudnativepg or provider, only the objects. `trendgen up` runs it; run it as its own process under Compose or Kubernetes.',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'protect');
      survivePostgresSocketRace((message) => logger.warn(message));
      // Under `trendgen up` the supervisor kills a child whose heartbeats stop: without them, protect was
      // killed and restarted every 90 s, and the WAL stream stopped each time.
      startLiveness(config.livenessTimeoutSeconds * 1000, config.livenessFile);
      if (!config.backup.continuous) {
        logger.info('BACKUP_CONTINUOUS is off: nothing to do');
        // Nothing else holds the event loop open: without this the process ended at once (exit code 13).
        const idle = setInterval(() => {}, 60_000);
        await untilStopped();
        clearInterval(idle);
        return;
      }
      const services = await connectServices(config, { postgres: true, redis: false });
      const stop = new AbortController();
      let halfFailed: Error | undefined;
      try {
        const sql = openDatabase(services.databaseUrl, { max: 1 });
        try {
          await migrate(sql);
        } finally {
          await sql.end({ timeout: 5 });
        }
        void untilStopped().then((reason) => {
          logger.info({ reason }, 'protect stopping');
          stop.abort();
        });
        // Objects stream beside the WAL, so one process keeps the whole recovery point current (I8, I11).
        const streamSql = openDatabase(services.databaseUrl, { max: 4 });
        try {
          // Both halves or neither: a half that fails stops the other and the process ends, so `up`'s
          // supervisor starts it again, rather than one half living on alone (objects not streamed, unnoticed).
          if (!streamsWal(config))
            logger.info(
              `BACKUP_DATABASE_PITR=${config.backup.databasePitr}: the database's WAL is left to it; streaming the objects only`,
            );
          const halves = [
            ...(streamsWal(config)
              ? [
                  runProtect({
                    config,
                    databaseUrl: services.databaseUrl,
                    signal: stop.signal,
                    log: {
                      info: (m) => logger.info(m),
                      warn: (m) => logger.warn(m),
                      error: (m) => logger.error(m),
                    },
                  }),
                ]
              : []),
            runObjectStream({
              config,
              sql: streamSql,
              objects: createBlobStore(config.storageUrl, config.s3),
              signal: stop.signal,
              onProgress: logStreamEvent(logger),
            }),
          ].map((half) =>
            half.catch((error: unknown) => {
              stop.abort();
              throw error;
            }),
          );
          const failed = (await Promise.allSettled(halves)).find((r) => r.status === 'rejected');
          if (failed) halfFailed = failed.reason as Error;
        } finally {
          await streamSql.end({ timeout: 5 });
        }
      } finally {
        await services.release();
      }
      if (halfFailed) {
        // The supervisor's IPC channel and the heartbeats would keep this process alive and looking healthy.
        logger.error(
          `continuous protection stopped: ${halfFailed.message}; exiting so that it is started again`,
        );
        process.stderr.write(`trendgen: ${scrub(halfFailed.message)}\n`);
        process.exit(1);
      }
    });
}
