import type { Config } from '../config/config.ts';
import { checkDatabaseTls } from '../db/tls.ts';
import { embeddedPostgres } from '../embedded/connect.ts';
import { refuseUnfinishedRestore } from '../vault/restore-guards.ts';

/**
 * Resolves when the process is asked to stop: SIGTERM, SIGINT, or — for a child of `trendgen up` — its
 * supervisor disappearing (Node has no parent-death signal; a supervisor killed with SIGKILL must not leave
 * children holding ports and leases).
 */
export function untilStopped(): Promise<string> {
  return new Promise((resolve) => {
    let done = false;
    const stop = (reason: string) => {
      if (done) return;
      done = true;
      resolve(reason);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    if (process.env.TRENDGEN_SUPERVISED) {
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) stop('supervisor gone');
      }, 1000).unref();
    }
  });
}

/**
 * postgres.js 3.4 can throw from a setImmediate after a connection to PostgreSQL died (porsager/postgres
 * #1154, #1208): the query it belonged to has already been rejected with CONNECTION_CLOSED, but the throw
 * itself cannot be caught and would take a whole serving process down on a database restart. That one
 * error is logged and ignored; anything else still ends the process, as Node would.
 */
export function survivePostgresSocketRace(log: (message: string) => void): void {
  process.on('uncaughtException', (error) => {
    const stack = error instanceof Error ? (error.stack ?? '') : '';
    const isKnownRace =
      error instanceof TypeError &&
      error.message.includes("reading 'write'") &&
      /postgres[\\/]src[\\/]connection\.js/.test(stack);
    if (isKnownRace) {
      log('a write on a closed PostgreSQL connection was dropped (its query had already failed)');
      return;
    }
    process.stderr.write(`${stack || String(error)}\n`);
    process.exit(1);
  });
}

/**
 * A service process run on its own (Compose, Kubernetes) never starts on places an unfinished restore left
 * marked; under `up` the supervisor has looked already. The embedded PostgreSQL is looked at only when it runs.
 */
export async function refuseMarkedPlaces(config: Config): Promise<void> {
  if (process.env.TRENDGEN_SUPERVISED) return;
  // Before the first connection: a wrong CA or a certificate for another host name is one sentence.
  if (config.databaseUrl) await checkDatabaseTls(config.databaseUrl);
  const databaseUrl = config.databaseUrl ?? embeddedPostgres(config).findRunning()?.url;
  if (!databaseUrl) return;
  await refuseUnfinishedRestore({
    databaseUrl,
    redisUrl: config.redisUrl ?? '',
    promptsDir: config.promptsDir,
  });
}
