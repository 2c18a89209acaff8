import { writeFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import type { RunAs } from '../../src/embedded/run-as.ts';
import { freePort, isAlive, sleep, waitForExit } from '../../src/lib/process.ts';
import { ownedDir, start } from './proc.ts';

export interface Cluster {
  sql: postgres.Sql;
  /** A connection to another database of the server (the caller ends it). */
  connect(database: string): postgres.Sql;
  /** Waits until recovery has ended (the server was promoted). */
  promoted(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a restored data directory as a throwaway server: a trusted socket in `scratch` only, no TCP, no
 * archiving (it must not push into pgBackRest's repository) and no synchronous standby to wait for.
 */
export async function startCluster(
  dataDir: string,
  scratch: string,
  user: string,
  runAs: RunAs | undefined,
): Promise<Cluster> {
  const socketDir = ownedDir(path.join(scratch, 's'), runAs);
  const hba = path.join(scratch, 'hba.conf');
  writeFileSync(hba, 'local all all trust\n');
  const port = await freePort();
  const child = start(
    findPostgresBinary('postgres'),
    [
      '-D',
      dataDir,
      '-c',
      `port=${port}`,
      '-c',
      'listen_addresses=',
      '-c',
      `unix_socket_directories=${socketDir}`,
      '-c',
      `hba_file=${hba}`,
      '-c',
      'archive_mode=off',
      '-c',
      'synchronous_standby_names=',
      '-c',
      'logging_collector=off',
    ],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', TZ: 'UTC' },
      runAs,
    },
  );
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const sql = postgres({ host: socketDir, port, user, database: 'postgres', max: 1, onnotice: () => {} });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    sql,
    connect: (database) => postgres({ host: socketDir, port, user, database, max: 1, onnotice: () => {} }),
    async promoted() {
      for (;;) {
        if (exited())
          throw new Error(`the restored server stopped: ${log.trim().split('\n').slice(-3).join(' ')}`);
        try {
          const [row] = await sql<{ r: boolean }[]>`select pg_is_in_recovery() as r`;
          if (row && !row.r) return;
        } catch {
          // not accepting connections yet
        }
        await sleep(100);
      }
    },
    async stop() {
      await sql.end({ timeout: 5 }).catch(() => {});
      const pid = child.pid;
      if (!pid || !isAlive(pid) || exited()) return;
      child.kill('SIGINT');
      if (!(await waitForExit(pid, 60_000))) child.kill('SIGKILL');
    },
  };
}
