import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunAs } from '../../src/embedded/run-as.ts';
import { isSegmentName } from '../../src/vault/wal/lsn.ts';
import { chownTree, ownedDir, type RunResult, run } from './proc.ts';

export const STANZA = 'bench';

/** `pgBackRest 2.45`, or undefined when it is not installed. */
export function pgbackrestVersion(): string | undefined {
  try {
    return execFileSync('pgbackrest', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

export const INSTALL_HINT =
  'pgBackRest is not installed: install the Debian package with `apt-get install pgbackrest` (2.45 on bookworm). Then run the benchmark again.';

export interface PgBackRest {
  config: string;
  repo: string;
  spool: string;
  /** The archive_command the server runs (as its own user). */
  archiveCommand: string;
  /**
   * Runs a pgBackRest command as the server's user, with the password for its libpq connection, under GNU
   * time: `cpuS` is the user+sys CPU of the command and the local processes it waited for.
   */
  exec(args: string[], extra?: string[]): Promise<RunResult & { cpuS: number }>;
  /** The newest WAL segment pgBackRest has in its repository: what PostgreSQL was told, or the async spool's `.ok`. */
  newestArchived(lastArchivedWal: string | null): string | undefined;
}

/**
 * A throwaway stanza in `dir`: the repository on a local path, asynchronous archive-push through a spool
 * (`archive-async=y`), settings otherwise pgBackRest's defaults (one process, zst compression instead of the
 * default gz, closer to trendgen's zstd), start-fast like trendgen's `pg_basebackup -c fast`.
 */
export function makePgBackRest(
  dir: string,
  cluster: { dataDir: string; port: number; socketDir: string; user: string; password: string },
  runAs: RunAs | undefined,
): PgBackRest {
  ownedDir(dir, runAs, 0o755);
  const repo = ownedDir(path.join(dir, 'repo'), runAs);
  const spool = ownedDir(path.join(dir, 'spool'), runAs);
  const logDir = ownedDir(path.join(dir, 'log'), runAs);
  const lock = ownedDir(path.join(dir, 'lock'), runAs);
  const config = path.join(dir, 'pgbackrest.conf');
  writeFileSync(
    config,
    [
      '[global]',
      `repo1-path=${repo}`,
      'repo1-retention-full=2',
      'archive-async=y',
      `spool-path=${spool}`,
      `log-path=${logDir}`,
      `lock-path=${lock}`,
      'log-level-console=warn',
      'log-level-file=info',
      'compress-type=zst',
      'start-fast=y',
      '',
      `[${STANZA}]`,
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      `pg1-user=${cluster.user}`,
      '',
    ].join('\n'),
  );
  chownTree(dir, runAs);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    PGPASSWORD: cluster.password,
    TZ: 'UTC',
  };
  const outDir = path.join(spool, 'archive', STANZA, 'out');
  return {
    config,
    repo,
    spool,
    archiveCommand: `pgbackrest --config=${config} --stanza=${STANZA} archive-push %p`,
    async exec(args, extra = []) {
      const result = await run(
        '/usr/bin/time',
        [
          '-f',
          'CPU-SECONDS %U %S',
          'pgbackrest',
          `--config=${config}`,
          `--stanza=${STANZA}`,
          ...extra,
          ...args,
        ],
        { env, runAs },
      );
      const cpu = /CPU-SECONDS ([\d.]+) ([\d.]+)/.exec(result.stderr);
      return { ...result, cpuS: cpu ? Number(cpu[1]) + Number(cpu[2]) : Number.NaN };
    },
    newestArchived(lastArchivedWal) {
      let newest = lastArchivedWal && isSegmentName(lastArchivedWal) ? lastArchivedWal : undefined;
      let names: string[] = [];
      try {
        names = readdirSync(outDir);
      } catch {
        // The async process has not written its spool yet.
      }
      for (const name of names) {
        const segment = name.replace(/\.ok$/, '');
        if (name.endsWith('.ok') && isSegmentName(segment) && (!newest || segment > newest)) newest = segment;
      }
      return newest;
    },
  };
}
