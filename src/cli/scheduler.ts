import { Command } from 'commander';
import { createBlobStore } from '../blobstore/index.ts';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { realClock, runSchedule, type ScheduledJob } from '../lib/scheduler.ts';
import { currentConditions, evaluateAlerts, webhookSender } from '../ops/alerts.ts';
import { runDoctor } from '../ops/doctor/index.ts';
import { saveDoctorReport } from '../ops/doctor/reports.ts';
import { createLogger } from '../ops/logger.ts';
import { backupJob, drillJob, ledgerJob } from '../vault/scheduled.ts';
import { survivePostgresSocketRace, untilStopped } from './lifecycle.ts';

export function schedulerCommand(): Command {
  return new Command('scheduler')
    .description(
      'Run periodic work: backups to every target on BACKUP_SCHEDULE with retention after each, restore drills on DRILL_SCHEDULE, and the reconciler that rebuilds the generation queue from PostgreSQL every RECONCILE_INTERVAL_SECONDS.',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'scheduler');
      survivePostgresSocketRace((message) => logger.warn(message));
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
        const jobs: ScheduledJob[] = [];
        if (config.backup.schedule !== 'off') jobs.push(backupJob(deps));
        if (config.drill.schedule !== 'off') jobs.push(drillJob(deps));
        jobs.push(ledgerJob(deps));
        const schedule = runSchedule(jobs, realClock, stop.signal, {
          onStart: (job, slot) => logger.info({ job, slot }, 'scheduled job starting'),
          onError: (job, error) => logger.error({ job, err: error }, 'scheduled job failed'),
          onOverrun: (job, slot) =>
            logger.warn({ job, slot }, 'the previous run outlived its slot; this slot is skipped'),
        });
        const reason = await untilStopped();
        logger.info({ reason }, 'scheduler stopping; waiting for running jobs');
        stop.abort();
        await schedule;
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
