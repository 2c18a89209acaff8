import type { Redis as RedisClient } from 'ioredis';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';

export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

export interface CheckResult {
  /** Stable dotted name (`postgres.fsync`, `backup.s3.fresh`): scripts, metrics and alerts key on it. */
  id: string;
  status: CheckStatus;
  /** One sentence saying what was found. */
  message: string;
  /** What the operator can do about a WARN or FAIL. */
  hint?: string;
}

export interface DoctorReport {
  /** False when any check failed; WARNs leave it true. */
  ok: boolean;
  checks: CheckResult[];
}

export type Outcome = Omit<CheckResult, 'id'>;

export interface DoctorContext {
  config: Config;
  timeoutMs: number;
  now: Date;
  /** Where PostgreSQL and Redis were found (the URL, or the embedded instance), once connected. */
  databaseUrl?: string;
  redisUrl?: string;
  /** The database, connected once for all checks; rejects with NotChecked when it cannot be reached. */
  database(): Promise<Sql>;
  redis(): Promise<RedisClient>;
}

export interface DoctorCheck {
  id: string;
  run(ctx: DoctorContext): Promise<Outcome>;
}

/**
 * Thrown by a check that depends on something another check already reports as failing (the
 * database for the backup catalog, say): it becomes a WARN "not checked", so one cause gives one
 * FAIL instead of a screenful.
 */
export class NotChecked extends Error {
  override name = 'NotChecked';
}

export const ok = (message: string): Outcome => ({ status: 'OK', message });
export const warn = (message: string, hint?: string): Outcome => ({
  status: 'WARN',
  message,
  ...(hint ? { hint } : {}),
});
export const fail = (message: string, hint?: string): Outcome => ({
  status: 'FAIL',
  message,
  ...(hint ? { hint } : {}),
});

export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // AggregateError (a dual-stack connect refused on both addresses) has an empty message of its own.
  if (!message && error instanceof AggregateError && error.errors.length)
    return errorMessage(error.errors[0]);
  return message || (error as { code?: string }).code || 'unknown error';
}
