import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Cron } from 'croner';
import { z } from 'zod';
import { ConnectionUrlError, formatConnectionUrl, parseConnectionUrl } from '../lib/connection-url.ts';
import { parseAddress, parseRedisUrl } from '../lib/redis-client.ts';
import { ConfigError } from './errors.ts';

/** The kinds of value configuration variables take, each with the sentence a wrong value gets. */

export const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const sizeInBytes = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const match = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(value);
    if (!match) {
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 20MB, 512KiB or 1048576' });
      return z.NEVER;
    }
    const unit = (match[2] ?? 'b').toLowerCase();
    const factor = unit.startsWith('g')
      ? 1024 ** 3
      : unit.startsWith('m')
        ? 1024 ** 2
        : unit.startsWith('k')
          ? 1024
          : 1;
    return Math.floor(Number(match[1]) * factor);
  });

export const url = (protocols: string[]) =>
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    );

export const schedule = (fallback: string) =>
  z
    .string()
    .trim()
    .default(fallback)
    .refine((value) => {
      if (value === 'off') return true;
      try {
        new Cron(value, { paused: true });
        return true;
      } catch {
        return false;
      }
    }, 'must be a cron schedule such as "0 * * * *", or off');

export const token = z.string().min(16, 'must be at least 16 characters long');

/** A rate in bytes per second (`4MB` is four mebibytes a second), or `off`. */
export const rateOrOff = (fallback: string) =>
  z
    .string()
    .trim()
    .default(fallback)
    .transform((value, ctx) => {
      if (value === 'off') return undefined;
      const parsed = sizeInBytes.safeParse(value);
      if (!parsed.success || parsed.data < 1) {
        ctx.addIssue({ code: 'custom', message: 'must be a rate in bytes per second such as 4MB, or off' });
        return z.NEVER;
      }
      return parsed.data;
    });

/**
 * A PostgreSQL URL, one host or several (`postgres://u@host1:5432,host2:5432/db?target_session_attrs=primary`,
 * the failover form libpq and postgres.js both take), normalised: user name and password percent-encoded, a
 * `?password=` moved into the user info, so every client reads the same credentials.
 */
export const postgresUrl = z
  .string()
  .trim()
  .transform((value, ctx) => {
    try {
      const parsed = parseConnectionUrl(value, { multiHost: true });
      if (parsed.scheme === 'postgres' || parsed.scheme === 'postgresql') return formatConnectionUrl(parsed);
      ctx.addIssue({ code: 'custom', message: 'must be a URL starting with postgres:// or postgresql://' });
    } catch (error) {
      if (!(error instanceof ConnectionUrlError)) throw error;
      ctx.addIssue({
        code: 'custom',
        message: `must be a URL starting with postgres:// or postgresql://, but ${error.message}`,
      });
    }
    return z.NEVER;
  });

/** A Redis URL: one server (`redis://`, `rediss://`), or a master through Sentinels (`redis+sentinel://`). */
export const redisUrl = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    try {
      parseRedisUrl(value);
    } catch (error) {
      if (!(error instanceof ConnectionUrlError)) throw error;
      const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase() ?? '';
      ctx.addIssue({
        code: 'custom',
        message: ['redis', 'rediss', 'redis+sentinel', 'rediss+sentinel'].includes(scheme)
          ? `must be a Redis URL such as redis://:password@host:6379/0, but ${error.message}`
          : 'must be a URL starting with redis:// or rediss:// (redis+sentinel:// or rediss+sentinel:// for Sentinels)',
      });
    }
  });

/** `host:port,host:port` (a missing port is `defaultPort`). */
export const addressList = (defaultPort: number) =>
  z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      try {
        for (const entry of value.split(',')) parseAddress(entry, defaultPort);
      } catch (error) {
        if (!(error instanceof ConnectionUrlError)) throw error;
        ctx.addIssue({
          code: 'custom',
          message: `must be a comma-separated list of host:port, but ${error.message}`,
        });
      }
    });

/** A CA file named by `key`, as an absolute path; `system` (libpq's word for the system's CAs) as it is. */
export function readableFile(key: string, value: string | undefined, cwd: string): string | undefined {
  if (!value || (value === 'system' && key === 'PGSSLROOTCERT')) return value;
  const file = path.resolve(cwd, value);
  try {
    readFileSync(file);
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(
      `${key} names ${file}, which cannot be read (${why}): give the path of a CA file (PEM).`,
    );
  }
  return file;
}
