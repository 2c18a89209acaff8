import type { Config } from '../config/config.ts';
import { streamsWal } from '../config/protection.ts';

export { streamsWal } from '../config/protection.ts';

export interface Protector {
  data: 'postgres' | 'objects' | 'prompts' | 'redis';
  /** The system that keeps this data recoverable to a moment: trendgen, CloudNativePG or the provider. */
  by: 'trendgen' | 'CloudNativePG' | 'provider';
  how: string;
}

/** What the WAL half reported of the database's stream, enough to tell a server that refuses replication. */
export interface WalReport {
  source: 'postgres' | 'objects';
  state: string;
}

const SNAPSHOT_COPY =
  "trendgen's snapshots also keep a logical copy (pg_dump), which drills restore and verify";

/**
 * Which system protects which data, for `trendgen status`, doctor and `GET /api/v1/backups`: with
 * CloudNativePG or a managed service keeping the database's point-in-time recovery, trendgen still protects
 * the objects, the prompt files and Redis, and its snapshots cross-check the database.
 */
export function whoProtects(config: Config, reports: WalReport[]): Protector[] {
  const walStates = reports.filter((r) => r.source === 'postgres').map((r) => r.state);
  const objectsStreamed = reports.some((r) => r.source === 'objects');
  const schedule = `snapshots on ${config.backup.schedule}`;
  let postgres: Protector;
  if (config.backup.databasePitr === 'cloudnativepg')
    postgres = {
      data: 'postgres',
      by: 'CloudNativePG',
      how: `its WAL archive and base backups in its object store (point-in-time restore: a Cluster bootstrapped from them); ${SNAPSHOT_COPY}`,
    };
  else if (
    config.backup.databasePitr === 'provider' ||
    (walStates.length > 0 && walStates.every((s) => s === 'refused'))
  )
    postgres = {
      data: 'postgres',
      by: 'provider',
      how: `the managed service's own point-in-time recovery; ${SNAPSHOT_COPY}`,
    };
  else if (streamsWal(config))
    postgres = {
      data: 'postgres',
      by: 'trendgen',
      how: `its WAL stream (${config.backup.sync ? 'synchronous' : 'asynchronous'}) and base backups; restore --to-time reaches any moment of ${config.source.BACKUP_PITR_WINDOW ?? '7d'}`,
    };
  else postgres = { data: 'postgres', by: 'trendgen', how: `${schedule} (pg_dump) only` };
  return [
    postgres,
    {
      data: 'objects',
      by: 'trendgen',
      how: objectsStreamed
        ? 'the object stream: every new object on every target within seconds'
        : `${schedule} only (the object stream has not reported)`,
    },
    {
      data: 'prompts',
      by: 'trendgen',
      how: 'every version is a row in PostgreSQL (protected with the database); the files are in every snapshot, and a point-in-time restore writes them from the history',
    },
    { data: 'redis', by: 'trendgen', how: `${schedule} (queue state; generations are rows in PostgreSQL)` },
  ];
}
