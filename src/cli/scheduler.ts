import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { nameConnections, openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { startLiveness } from '../lib/liveness.ts';
import { realClock, runSchedule, type ScheduledJob } from '../lib/scheduler.ts';
import { currentConditions, evaluateAlerts, webhookSender } from '../ops/alerts.ts';
import { runDoctor } from '../ops/doctor/index.ts';
import { saveDoctorReport } from '../ops/doctor/reports.ts';
import { createLogger } from '../ops/logger.ts';
import { recoverySampleJob } from '../ops/recovery-samples.ts';
import { backupJob, drillJob, ledgerJob, runCollector } from '../vault/scheduled.ts';
import { runScrub } from '../vault/scrub.ts';
import { refuseMarkedPlaces, survivePostgresSocketRace, untilStopped } from './lifecycle.ts';

export function schedulerCommand(): Command {
  return new Command('scheduler')
    .description(
      'Run periodic work: backups to every target on BACKUP_SCHEDULE with retention after each, restore drills on DRILL_SCHEDULE, the reconciler that rebuilds the generation queue from PostgreSQL every RECONCILE_INTERVAL_SECONDS, and the collector that removes deleted objects no restorable state needs, orphans and crash leftovers (at start and every OBJECT_GC_GRACE).',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'scheduler');
      survivePostgresSocketRace((message) => logger.warn(message));
      nameConnections('scheduler');
      await refuseMarkedPlaces(config);
      startLiveness(config.livenessTimeoutSeconds * 1000, config.livenessFile);
      // Loaded here, not at the top: BullMQ takes a while to load, and other commands never need it.
      const { createQueue, queueConnection } = await import('../generation/queue.ts');
      const { reconcile } = await import('../generation/reconciler.ts');
      const services = await connectServices(config);
      const sql = openDatabase(services.databaseUrl, { max: 4 });
      const connection = queueConnection(services.redisUrl);
      connection.on('error', () => {});
      const queue = createQueue(connection);
      const stop = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      let alertTimer: NodeJS.Timeout | undefined;
      let doctorTimer: NodeJS.Timeout | undefined;
      try {
        await migrate(sql);
        const tick = async () => {
          try {
            const report = await reconcile(sql, queue);
            if (report.leasesExpired || report.requeued) logger.warn(report, 'reconciler repaired the queue');
          } catch (error) {
            logger.error({ err: error }, 'reconcile failed; retrying next interval');
          }
          if (!stop.signal.aborted)
            timer = setTimeout(tick, config.generation.reconcileIntervalSeconds * 1000);
        };
        await tick();
        if (config.alertWebhookUrl) {
          const send = webhookSender(config.alertWebhookUrl);
          const alertTick = async () => {
            try {
              const result = await evaluateAlerts(sql, await currentConditions(sql, config), send);
              if (result.fired.length || result.resolved.length) logger.warn(result, 'alerts sent');
            } catch (error) {
              logger.error({ err: error }, 'alert evaluation failed; retrying next minute');
            }
            if (!stop.signal.aborted) alertTimer = setTimeout(alertTick, 60_000);
          };
          await alertTick();
        }
        const doctorTick = async () => {
          try {
            const report = await runDoctor(config);
            await saveDoctorReport(sql, report);
          } catch (error) {
            logger.error({ err: error }, 'doctor run failed');
          }
          if (!stop.signal.aborted) doctorTimer = setTimeout(doctorTick, 5 * 60_000);
        };
        void doctorTick();
        const deps = {
          config,
          sql,
          databaseUrl: services.databaseUrl,
          redisUrl: services.redisUrl,
          objects: createBlobStore(config.storageUrl, config.s3),
          logger,
          clock: realClock,
        };
        const periodic = runPeriodicWork(deps, stop.signal);
        const reason = await untilStopped();
        logger.info({ reason }, 'scheduler stopping; waiting for running jobs');
        stop.abort();
        await periodic;
      } finally {
        if (timer) clearTimeout(timer);
        if (alertTimer) clearTimeout(alertTimer);
        if (doctorTimer) clearTimeout(doctorTimer);
        await queue.close().catch(() => {});
        connection.disconnect();
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}

type SchedulerDeps = Parameters<typeof backupJob>[0];

/** The scheduled jobs, the object scrub and the collector, until `signal` aborts; resolves when all have ended. */
async function runPeriodicWork(deps: SchedulerDeps, signal: AbortSignal): Promise<void> {
  const { config, logger } = deps;
  const scrub = config.objectScrubBytesPerSecond
    ? runScrub(deps, { bytesPerSecond: config.objectScrubBytesPerSecond, pauseMs: 60_000, signal })
    : undefined;
  const collector = runCollector(deps, signal);
  const jobs: ScheduledJob[] = [];
  if (config.backup.schedule !== 'off') jobs.push(backupJob(deps));
  if (config.drill.schedule !== 'off') jobs.push(drillJob(deps));
  // Offsite deletion ledgers follow from a durable queue, retried every minute (I3).
  jobs.push(ledgerJob(deps));
  // The console's timeline of recovery-point lag.
  jobs.push(recoverySampleJob(deps.sql, config));
  const schedule = runSchedule(jobs, realClock, signal, {
    onStart: (job, slot) => logger.info({ job, slot }, 'scheduled job starting'),
    onError: (job, error) => logger.error({ job, err: error }, 'scheduled job failed'),
    onOverrun: (job, slot) =>
      logger.warn({ job, slot }, 'the previous run outlived its slot; this slot is skipped'),
  });
  await Promise.all([schedule, scrub, collector]);
}
