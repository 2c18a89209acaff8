import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { checkDatabaseTls } from '../db/tls.ts';
import { writeFileAtomicSync } from '../lib/files.ts';
import { assertPortFree, runningPid, sleep, upPidFile } from '../lib/process.ts';
import { refuseUnfinishedRestore } from '../vault/restore-guards.ts';
import { SupervisedChildren } from './children.ts';
import { SupervisedServices } from './services.ts';

export interface SupervisorOptions {
  /** The commands to run as supervised children, e.g. [['serve']]; worker and scheduler join later. */
  children: string[][];
  logger: Logger;
  onReady?: (info: { databaseUrl: string; redisUrl: string }) => void;
}

/** Refuses a second `up` on the same DATA_DIR; a pid file left by a killed `up` is recognised as stale. */
function acquireLock(config: Config): string {
  const lock = upPidFile(config.dataDir);
  mkdirSync(path.dirname(lock), { recursive: true });
  const pid = runningPid(lock, 'trendgen');
  if (pid) {
    throw new Error(
      `trendgen up already runs on ${config.dataDir} (pid ${pid}); stop it first or use another DATA_DIR.`,
    );
  }
  writeFileAtomicSync(lock, String(process.pid));
  return lock;
}

/**
 * `trendgen up`: embedded PostgreSQL and Redis (unless URLs are configured), then the service processes as
 * children that are restarted when they die. Shutdown runs in order: children drain first, then Redis
 * fsyncs its AOF, then PostgreSQL does a fast shutdown.
 */
export async function runSupervisor(config: Config, options: SupervisorOptions): Promise<number> {
  const { logger } = options;
  // Before anything starts: a taken API port would have its server restarted forever while the rest runs.
  await assertPortFree(config.host, config.port, 'PORT');
  // A wrong CA or a certificate for another host name: one sentence, not children failing over and over.
  if (config.databaseUrl) await checkDatabaseTls(config.databaseUrl);
  const lock = acquireLock(config);
  const services = new SupervisedServices(config, logger);
  const environment = () => ({ DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl });
  const children = new SupervisedChildren(
    options.children,
    logger,
    async () => {
      await services.ensure();
      return environment();
    },
    { livenessTimeoutMs: config.livenessTimeoutSeconds * 1000 },
  );
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await children.stop();
    await services.stop();
    rmSync(lock, { force: true });
  };
  const done = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        void shutdown(signal).then(() => resolve(0));
      });
    }
  });

  try {
    await services.ensure();
    await refuseUnfinishedRestore({
      databaseUrl: services.databaseUrl,
      redisUrl: services.redisUrl,
      promptsDir: config.promptsDir,
    });
    const sql = openDatabase(services.databaseUrl, { max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } catch (error) {
    await shutdown('startup failure');
    throw error;
  }
  children.startAll(environment());
  options.onReady?.({ databaseUrl: services.databaseUrl, redisUrl: services.redisUrl });

  const watchdog = setInterval(() => {
    if (!stopping) void services.revive();
  }, 2000);
  const code = await done;
  clearInterval(watchdog);
  await sleep(0);
  return code;
}
