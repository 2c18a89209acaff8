import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConnectionUrlError } from '../lib/connection-url.ts';
import {
  type RedisSettings as Connection,
  composeRedisUrl,
  DEFAULT_SENTINEL_MASTER,
} from '../lib/redis-client.ts';
import { ConfigError } from './errors.ts';

/** REDIS_URL with the Sentinel and TLS settings folded in; a CA file that cannot serve is refused now, by name. */
function redisConnection(settings: Connection): string | undefined {
  const { caFile } = settings;
  if (caFile && !settings.url && !settings.sentinels)
    throw new ConfigError(
      'REDIS_TLS_CA is set, but neither REDIS_URL nor REDIS_SENTINELS is: the embedded Redis has no TLS; set REDIS_URL to rediss://… or unset REDIS_TLS_CA.',
    );
  if (caFile) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `REDIS_TLS_CA names ${caFile}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`,
      );
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new ConfigError(
        `REDIS_TLS_CA names ${caFile}, which holds no PEM certificate: give the CA's certificate.`,
      );
  }
  try {
    return composeRedisUrl(settings);
  } catch (error) {
    if (error instanceof ConnectionUrlError) throw new ConfigError(`${error.message}.`);
    throw error;
  }
}

export interface RedisSettings {
  /** The embedded Redis's port and AOF policy. */
  port: number;
  appendfsync: 'everysec' | 'always';
  sentinels: string | undefined;
  sentinelMaster: string;
  /** REDIS_TLS_CA, resolved against the working directory. */
  tlsCa: string | undefined;
}

type RedisEnv = {
  REDIS_URL?: string | undefined;
  REDIS_SENTINELS?: string | undefined;
  REDIS_SENTINEL_MASTER?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
  REDIS_TLS_CA?: string | undefined;
  REDIS_PORT: number;
  REDIS_APPENDFSYNC: 'everysec' | 'always';
};

/** The REDIS_* variables as one connection string (undefined: the embedded Redis) and the settings they hold. */
export function redisConfig(e: RedisEnv, cwd: string): { url: string | undefined; settings: RedisSettings } {
  const tlsCa = e.REDIS_TLS_CA ? path.resolve(cwd, e.REDIS_TLS_CA) : undefined;
  const url = redisConnection({
    url: e.REDIS_URL,
    sentinels: e.REDIS_SENTINELS,
    master: e.REDIS_SENTINEL_MASTER,
    sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    caFile: tlsCa,
  });
  return {
    url,
    settings: {
      port: e.REDIS_PORT,
      appendfsync: e.REDIS_APPENDFSYNC,
      sentinels: e.REDIS_SENTINELS,
      sentinelMaster: e.REDIS_SENTINEL_MASTER ?? DEFAULT_SENTINEL_MASTER,
      tlsCa,
    },
  };
}
