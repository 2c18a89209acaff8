import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { EmbeddedPostgres } from '../../src/embedded/postgres.ts';
import { tempDir } from './temp.ts';

export interface BareMachine {
  temp: { dir: string; remove(): void };
  dataDir: string;
  /** The environment of `trendgen` commands on this machine: embedded servers, backups beside DATA_DIR. */
  env: Record<string, string>;
  /** The embedded PostgreSQL of DATA_DIR (not started). */
  postgres(settings?: Record<string, string>): EmbeddedPostgres;
}

/**
 * A machine whose DATA_DIR can be lost while BACKUP_DIR survives (another disk), as continuous protection's
 * tests need: the key that authenticates the unencrypted repository's records lives outside DATA_DIR.
 */
export function bareMachine(prefix: string, extraEnv: Record<string, string> = {}): BareMachine {
  const temp = tempDir(prefix);
  const dataDir = path.join(temp.dir, 'data');
  return {
    temp,
    dataDir,
    env: {
      DATA_DIR: dataDir,
      BACKUP_DIR: path.join(temp.dir, 'backups'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      LOG_LEVEL: 'warn',
      BACKUP_KEY: randomBytes(32).toString('hex'),
      DATABASE_URL: '',
      REDIS_URL: '',
      ...extraEnv,
    },
    postgres: (settings) =>
      new EmbeddedPostgres({
        root: dataDir,
        user: 'trends',
        database: 'trends',
        port: 0,
        ...(settings ? { settings } : {}),
      }),
  };
}
