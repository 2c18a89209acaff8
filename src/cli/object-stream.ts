import { Command } from 'commander';
import type { Logger } from 'pino';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { startLiveness } from '../lib/liveness.ts';
import { createLogger } from '../ops/logger.ts';
import { objectStreamStatus } from '../vault/stream/objects-status.ts';
import { type ObjectStreamEvent, runObjectStream } from '../vault/stream/objects-stream.ts';
import { printJson, withDatabase } from './context.ts';
import { survivePostgresSocketRace, untilStopped } from './lifecycle.ts';

export function objectStreamCommand(): Command {
  return new Command('object-stream')
    .description(
      'Stream every new object to every backup target within seconds of its row (continuous protection); runs until stopped. With --status, print how far each target is instead.',
    )
    .option('--status', "print each target's recoverable point, lag and pending objects, then exit")
    .option('--json', 'with --status: one JSON document on stdout')
    .action(async (options: { status?: boolean; json?: boolean }) => {
      if (options.status) return await printStatus(Boolean(options.json));
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'object-stream');
      survivePostgresSocketRace((message) => logger.warn(message));
      startLiveness(config.livenessTimeoutSeconds * 1000, config.livenessFile);
      const services = await connectServices(config, { postgres: true, redis: false });
      const sql = openDatabase(services.databaseUrl, { max: 4 });
      const stop = new AbortController();
      try {
        await migrate(sql);
        const running = runObjectStream({
          config,
          sql,
          objects: createBlobStore(config.storageUrl, config.s3),
          signal: stop.signal,
          onProgress: logStreamEvent(logger),
        });
        logger.info('object stream started');
        const reason = await Promise.race([untilStopped(), running.then(() => 'ended')]);
        logger.info({ reason }, 'object stream stopping');
        stop.abort();
        await running;
      } finally {
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}

async function printStatus(json: boolean): Promise<void> {
  await withDatabase(async ({ config, sql }) => {
    const status = await objectStreamStatus(sql, config);
    if (json) return printJson(status);
    for (const row of status) {
      const until = row.recoverableUntil?.toISOString() ?? 'never streamed';
      const lag = row.lagSeconds === undefined ? '' : `, lag ${row.lagSeconds.toFixed(1)} s`;
      const error = `${row.error ? `, failing: ${row.error}` : ''}${row.heldBy ? ` (held by: ${row.heldBy})` : ''}`;
      process.stdout.write(
        `${row.target}: recoverable until ${until}${lag}, ${row.pending} pending${error}\n`,
      );
    }
  });
}

/** How the object stream's events reach the log, for `object-stream` and `protect` alike. */
export function logStreamEvent(logger: Logger): (event: ObjectStreamEvent) => void {
  return (event) => {
    if (event.type === 'streamed') logger.debug(event, 'objects streamed');
    else if (event.type === 'target-ok') logger.info(event, 'backup target works again');
    else logger.warn(event, 'object stream problem; retrying');
  };
}
