import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { ensureDatabase, openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { embeddedPostgres, embeddedRedis } from '../embedded/connect.ts';
import { writeFileAtomicSync } from '../lib/files.ts';
import { isProcessNamed, sleep, waitForExit } from '../lib/process.ts';

/** A child that dies sooner than this after its start counts as crash-looping and is restarted with backoff. */
const CRASH_LOOP_MS = 5_000;

const CLI_ENTRY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/trendgen.js');

export interface SupervisorOptions {
  /** The commands to run as supervised children, e.g. [['serve']]; worker and scheduler join later. */
  children: string[][];
  logger: Logger;
  onReady?: (info: { databaseUrl: string; redisUrl: string }) => void;
}

interface Managed {
  args: string[];
  child: ChildProcess | undefined;
  restarts: number;
  lastStart: number;
}

/** Refuses a second `up` on the same DATA_DIR; a pid file left by a killed `up` is recognised as stale. */
function acquireLock(config: Config): string {
  const lock = path.join(config.dataDir, 'run', 'up.pid');
  mkdirSync(path.dirname(lock), { recursive: true });
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (pid && pid !== process.pid && isProcessNamed(pid, 'trendgen')) {
      throw new Error(
        `trendgen up already runs on ${config.dataDir} (pid ${pid}); stop it first or use another DATA_DIR.`,
      );
    }
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
  const lock = acquireLock(config);
  const pg = config.databaseUrl ? undefined : embeddedPostgres(config);
  const redis = config.redisUrl ? undefined : embeddedRedis(config);
  let stopping = false;
  const managed: Managed[] = options.children.map((args) => ({
    args,
    child: undefined,
    restarts: 0,
    lastStart: 0,
  }));

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    for (const m of managed) if (m.child?.pid) m.child.kill('SIGTERM');
    for (const m of managed) {
      if (m.child?.pid && !(await waitForExit(m.child.pid, 20_000))) m.child.kill('SIGKILL');
    }
    await redis?.stop().catch((error) => logger.error({ err: error }, 'stopping Redis failed'));
    await pg?.stop().catch((error) => logger.error({ err: error }, 'stopping PostgreSQL failed'));
    rmSync(lock, { force: true });
  };

  let databaseUrl = config.databaseUrl ?? '';
  let redisUrl = config.redisUrl ?? '';
  // One start at a time: the watchdog and several dying children can all ask at once, and two
  // `pg_ctl start` on one data folder make one of them fail.
  let ensuring: Promise<void> | undefined;
  const ensureServices = () => {
    ensuring ??= startServices().finally(() => {
      ensuring = undefined;
    });
    return ensuring;
  };
  const startServices = async () => {
    if (pg) {
      // An instance left running by a killed `up` or by another command is adopted, not duplicated.
      const running = pg.findRunning() ?? (await pg.start());
      await ensureDatabase(pg.url(running.port, 'postgres'), config.postgres.database);
      databaseUrl = running.url;
    }
    if (redis) {
      const running = (await redis.findRunning()) ?? (await redis.start());
      redisUrl = running.url;
    }
  };

  const done = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        void shutdown(signal).then(() => resolve(0));
      });
    }
  });

  try {
    await ensureServices();
    const sql = openDatabase(databaseUrl, { max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } catch (error) {
    await shutdown('startup failure');
    throw error;
  }

  const start = (m: Managed) => {
    m.lastStart = Date.now();
    const child = spawn(process.execPath, [CLI_ENTRY, ...m.args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, TRENDGEN_SUPERVISED: '1' },
    });
    m.child = child;
    child.once('exit', (code, signal) => {
      if (stopping) return;
      // Back off only while a child keeps dying right after it starts (a crash loop); a child that had
      // started properly restarts at once, however often it is killed.
      const crashLoop = Date.now() - m.lastStart < CRASH_LOOP_MS;
      m.restarts = crashLoop ? m.restarts + 1 : 0;
      const delay = crashLoop ? Math.min(30_000, 250 * 2 ** Math.min(m.restarts, 7)) : 0;
      logger.error(
        { command: m.args.join(' '), code, signal, restartInMs: delay },
        'child exited; restarting',
      );
      restart(m, delay);
    });
  };
  // A child comes back only on top of running services; while they cannot start, keep trying.
  const restart = (m: Managed, delay: number) => {
    setTimeout(() => {
      if (stopping) return;
      ensureServices()
        .then(() => {
          if (!stopping) start(m);
        })
        .catch((error) => {
          logger.error({ err: error }, 'could not restart services; trying again');
          restart(m, Math.min(30_000, Math.max(1_000, delay * 2)));
        });
    }, delay);
  };
  for (const m of managed) start(m);
  options.onReady?.({ databaseUrl, redisUrl });

  // Embedded servers are children too: if one dies, the next health tick brings it back.
  const watchdog = setInterval(() => {
    if (stopping) return;
    void (async () => {
      if (pg && !pg.findRunning()) {
        logger.error('PostgreSQL is not running; restarting it');
        await ensureServices().catch((error) => logger.error({ err: error }, 'PostgreSQL restart failed'));
      }
      if (redis && !(await redis.findRunning())) {
        logger.error('Redis is not running; restarting it');
        await ensureServices().catch((error) => logger.error({ err: error }, 'Redis restart failed'));
      }
    })();
  }, 2000);
  const code = await done;
  clearInterval(watchdog);
  await sleep(0);
  return code;
}
