import type { Config } from './types.ts';

/**
 * Whether trendgen itself streams the database's WAL (`trendgen protect`'s pg_receivewal half): continuous
 * protection is on and neither CloudNativePG nor a managed service keeps the database's point-in-time recovery.
 */
export function streamsWal(config: Config): boolean {
  return config.backup.continuous && config.backup.databasePitr === 'trendgen';
}
