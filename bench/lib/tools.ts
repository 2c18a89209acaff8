import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allocatorEnvironment } from '../../src/lib/allocator.ts';
import { type Dataset, pgEnv } from './dataset.ts';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TRENDGEN = path.join(PROJECT_ROOT, 'bin', 'trendgen.js');
const PASSWORD = 'bench-password-not-secret';

export type ToolName = 'classic' | 'restic' | 'trendgen';
export const TOOL_NAMES: ToolName[] = ['classic', 'restic', 'trendgen'];

export interface Step {
  script: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** One way of backing up and restoring the dataset. Scripts run under `bash -c` with `set -euo pipefail`. */
export interface Tool {
  name: ToolName;
  /** Where its backups go: the size of this folder is the repository size. */
  repoDir: string;
  /** Database the full restore loads into (created by the step), dropped afterwards. */
  restoreDb: string;
  /** Folder the full restore writes files into (empty before the step). */
  restoreDir: string;
  backup(): Step;
  restore(): Step;
  /** Folder of restored images, for the sanity check after a restore. */
  restoredImagesDirs(): string[];
  /** Forget every backup (a fresh repository for the next run). */
  reset(): void;
}

/** A minimal environment: no variable of the caller's shell (BACKUP_S3_URI, .env leftovers) leaks in. */
function baseEnv(ds: Dataset): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: path.join(ds.root, 'home'),
    LANG: 'C.UTF-8',
    TMPDIR: path.join(ds.root, 'tmp'),
    ...pgEnv(ds),
  };
}

const q = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;

/**
 * The classic scripts/backup.sh, step by step: a plain pg_dump through gzip -9, a tar -czf of the
 * prompts and the two data folders, a tar -czf around both, the folder removed, archives older than
 * BACKUP_RETENTION_DAYS deleted. The restore is the documented manual one (tar, gunzip | psql, tar).
 */
export function classicTool(ds: Dataset): Tool {
  const repoDir = path.join(ds.root, 'repos', 'classic');
  const restoreDir = path.join(ds.root, 'restore', 'classic');
  const env = { ...baseEnv(ds), BACKUP_DIR: repoDir, BACKUP_RETENTION_DAYS: '14', POSTGRES_DB: 'trends' };
  return {
    name: 'classic',
    repoDir,
    restoreDb: 'restore_classic',
    restoreDir,
    backup: () => ({
      cwd: ds.root,
      env,
      script: `
        TIMESTAMP=$(date +%Y%m%d_%H%M%S)
        NAME="trend_generator_backup_$TIMESTAMP"
        mkdir -p "$BACKUP_DIR/$NAME"
        pg_dump --no-password "$POSTGRES_DB" | gzip -9 > "$BACKUP_DIR/$NAME/db.sql.gz"
        tar -czf "$BACKUP_DIR/$NAME/data.tar.gz" prompts data/trend_examples data/generated_images
        tar -czf "$BACKUP_DIR/$NAME.tar.gz" -C "$BACKUP_DIR" "$NAME"
        rm -rf "$BACKUP_DIR/$NAME"
        find "$BACKUP_DIR" -name 'trend_generator_backup_*.tar.gz' -mtime +"$BACKUP_RETENTION_DAYS" -delete`,
    }),
    restore: () => ({
      cwd: restoreDir,
      env,
      script: `
        ARCHIVE=$(ls -1 "$BACKUP_DIR"/trend_generator_backup_*.tar.gz | sort | tail -n 1)
        NAME=$(basename "$ARCHIVE" .tar.gz)
        psql -X -q -d postgres -c 'create database restore_classic'
        tar -xzf "$ARCHIVE"
        gunzip -c "$NAME/db.sql.gz" | psql -X -q -v ON_ERROR_STOP=1 -d restore_classic > /dev/null
        tar -xzf "$NAME/data.tar.gz" -C .
        rm -rf "$NAME"`,
    }),
    restoredImagesDirs: () => [path.join(restoreDir, 'data')],
    reset: () => rmSync(repoDir, { recursive: true, force: true }),
  };
}

/**
 * restic (repository version 2, compression auto): the plain dump through --stdin as one snapshot and the
 * same folders as the classic script as another; restore = the files snapshot restored, the dump streamed
 * out of its snapshot into psql.
 */
export function resticTool(ds: Dataset): Tool {
  const repoDir = path.join(ds.root, 'repos', 'restic');
  const cacheDir = path.join(ds.root, 'restic-cache');
  const restoreDir = path.join(ds.root, 'restore', 'restic');
  const env = {
    ...baseEnv(ds),
    RESTIC_REPOSITORY: repoDir,
    RESTIC_PASSWORD: PASSWORD,
    RESTIC_CACHE_DIR: cacheDir,
  };
  return {
    name: 'restic',
    repoDir,
    restoreDb: 'restore_restic',
    restoreDir,
    backup: () => ({
      cwd: ds.root,
      env,
      script: `
        [ -f "$RESTIC_REPOSITORY/config" ] || restic init --repository-version 2 -q
        pg_dump --no-password trends | restic backup -q --host bench --tag db --stdin --stdin-filename trends.sql
        restic backup -q --host bench --tag files prompts data/trend_examples data/generated_images`,
    }),
    restore: () => ({
      cwd: restoreDir,
      env,
      script: `
        restic restore latest -q --host bench --tag files --target .
        psql -X -q -d postgres -c 'create database restore_restic'
        restic dump -q latest --host bench --tag db /trends.sql | psql -X -q -v ON_ERROR_STOP=1 -d restore_restic > /dev/null`,
    }),
    // restic 0.14 restores each backed-up folder under its base name (trend_examples/, generated_images/).
    restoredImagesDirs: () => [restoreDir],
    reset: () => {
      rmSync(repoDir, { recursive: true, force: true });
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

/** `trendgen backup` and `trendgen restore latest --to-database … --to-dir …`, as an operator runs them. */
/**
 * `nodeFlags` go on node's command line (e.g. `--cpu-prof --cpu-prof-dir=…`, which NODE_OPTIONS refuses);
 * `extraEnv` is added to trendgen's environment (e.g. UV_THREADPOOL_SIZE, to try a setting).
 */
export function trendgenTool(
  ds: Dataset,
  nodeFlags: string[] = [],
  extraEnv: Record<string, string> = {},
): Tool {
  const repoDir = path.join(ds.root, 'repos', 'trendgen');
  const restoreDir = path.join(ds.root, 'restore', 'trendgen');
  const restoreUrl = new URL(ds.databaseUrl);
  restoreUrl.pathname = '/restore_trendgen';
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(ds),
    DATABASE_URL: ds.databaseUrl,
    REDIS_URL: ds.redisUrl,
    STORAGE_URL: `file://${path.join(ds.root, 'data', 'objects')}`,
    PROMPTS_DIR: path.join(ds.root, 'prompts'),
    DATA_DIR: path.join(ds.root, 'data'),
    BACKUP_DIR: repoDir,
    BACKUP_PASSWORD: PASSWORD,
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  // As `npx trendgen` runs it: the program itself, whose first lines start node with glibc's malloc settings; with
  // node flags (a profile), node is named here and the settings it would have get into the environment instead.
  if (nodeFlags.length) Object.assign(env, allocatorEnvironment(env));
  const node = nodeFlags.length ? ['node', ...nodeFlags, TRENDGEN].map(q).join(' ') : q(TRENDGEN);
  return {
    name: 'trendgen',
    repoDir,
    restoreDb: 'restore_trendgen',
    restoreDir,
    backup: () => ({ cwd: ds.root, env, script: `${node} backup` }),
    restore: () => ({
      cwd: ds.root,
      env,
      script: `${node} restore latest --to-database ${q(restoreUrl.toString())} --to-dir ${q(restoreDir)}`,
    }),
    restoredImagesDirs: () => [path.join(restoreDir, 'objects')],
    reset: () => rmSync(repoDir, { recursive: true, force: true }),
  };
}

export function makeTools(ds: Dataset, names: ToolName[], trendgenEnv: Record<string, string> = {}): Tool[] {
  mkdirSync(path.join(ds.root, 'home'), { recursive: true });
  mkdirSync(path.join(ds.root, 'tmp'), { recursive: true });
  const all = {
    classic: classicTool(ds),
    restic: resticTool(ds),
    trendgen: trendgenTool(ds, [], trendgenEnv),
  };
  return names.map((name) => all[name]);
}
