import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { maskUrl, parseConnectionUrl, SECRET_PARAMS } from '../lib/connection-url.ts';
import { registerSecret } from '../lib/redact.ts';
import { ConfigError } from './errors.ts';
import { offsiteSecrets, parseOffsiteTargets } from './offsite-targets.ts';
import { redisConfig } from './redis.ts';
import type { Config } from './types.ts';
import {
  addressList,
  integer,
  postgresUrl,
  rateOrOff,
  readableFile,
  redisUrl,
  schedule,
  sizeInBytes,
  token,
  url,
} from './values.ts';

export { ConfigError } from './errors.ts';

export const SECRET_KEYS = new Set([
  'API_TOKEN',
  'ADMIN_TOKEN',
  'BACKUP_PASSWORD',
  'OPENAI_API_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'ALERT_WEBHOOK_URL',
  'REDIS_SENTINEL_PASSWORD',
]);

const envSchema = z.object({
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  PORT: integer(0, 65535).default(8080),
  TRUST_PROXY: z
    .string()
    .trim()
    .regex(
      /^(off|[0-9a-fA-F.:/]+(\s*,\s*[0-9a-fA-F.:/]+)*)$/,
      'must be off or a comma-separated list of proxy addresses or CIDR ranges',
    )
    .default('off'),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  PROMPTS_DIR: z.string().trim().min(1).default('./prompts'),
  DATABASE_URL: postgresUrl.optional(),
  PGSSLROOTCERT: z.string().trim().min(1).optional(),
  REDIS_URL: redisUrl.optional(),
  REDIS_SENTINELS: addressList(26379).optional(),
  REDIS_SENTINEL_MASTER: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9._-]+$/, 'must be a Sentinel master name (letters, digits, . _ -)')
    .optional(),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  REDIS_TLS_CA: z.string().trim().min(1).optional(),
  STORAGE_URL: url(['file:', 's3:']).optional(),
  POSTGRES_USER: z
    .string()
    .trim()
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier')
    .default('trends'),
  POSTGRES_DB: z
    .string()
    .trim()
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier')
    .default('trends'),
  POSTGRES_PORT: integer(0, 65535).default(0),
  REDIS_PORT: integer(0, 65535).default(0),
  REDIS_APPENDFSYNC: z.enum(['everysec', 'always']).default('everysec'),
  API_TOKEN: token.optional(),
  ADMIN_TOKEN: token.optional(),
  MAX_UPLOAD_SIZE: sizeInBytes.default(20 * 1024 * 1024),
  MAX_PROMPT_SIZE: sizeInBytes.default(256 * 1024),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PROMPTS_RESCAN_SECONDS: integer(1, 86400).default(10),
  LIVENESS_TIMEOUT_SECONDS: integer(2, 3600).default(30),
  LIVENESS_FILE: z.string().trim().min(1).optional(),
  OBJECT_SCRUB_RATE: rateOrOff('1MB'),
  BACKUP_DIR: z.string().trim().min(1).default('./backups'),
  BACKUP_RETENTION_DAYS: integer(1, 36500).default(14),
  BACKUP_S3_URI: url(['s3:']).optional(),
  // Checked by parseOffsiteTargets, whose sentences never quote an entry's credentials.
  BACKUP_OFFSITE_TARGETS: z.string().optional(),
  BACKUP_PASSWORD: z.string().min(8, 'must be at least 8 characters long').optional(),
  BACKUP_KEY: z.optional(z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hexadecimal characters')),
  BACKUP_SCHEDULE: schedule('0 * * * *'),
  DRILL_SCHEDULE: schedule('0 4 * * 0'),
  DRILL_DATABASE_URL: postgresUrl.optional(),
  BACKUP_ALLOW_UNENCRYPTED_OFFSITE: z.enum(['true', 'false']).default('false'),
  BACKUP_CONTINUOUS: z.enum(['on', 'off']).default('on'),
  BACKUP_SYNC: z.enum(['on', 'off']).default('off'),
  BACKUP_DATABASE_PITR: z.enum(['trendgen', 'cloudnativepg', 'provider']).default('trendgen'),
  BACKUP_PITR_WINDOW: z
    .string()
    .trim()
    .regex(/^\d+[smhdw]$/, 'must be a duration such as 7d, 36h or 90m')
    .default('7d')
    .transform((v) => Number(v.slice(0, -1)) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[v.at(-1)!]!),
  BACKUP_SLOT_MAX_WAL: sizeInBytes.default(4 * 1024 ** 3),
  // Minutes, not hours: an upload or temp file idle this long belongs to a writer that crashed (uploads stream
  // without pause and commit their row a moment after their bytes); open files and pid files guard the rest.
  OBJECT_GC_GRACE: z
    .string()
    .trim()
    .regex(/^\d+[smh]$/, 'must be a duration such as 10m, 90s or 1h')
    .default('10m')
    .transform((v) => Number(v.slice(0, -1)) * { s: 1, m: 60, h: 3600 }[v.at(-1)!]!),
  BACKUP_KEEP_LAST: integer(0, 100000).optional(),
  BACKUP_KEEP_HOURLY: integer(0, 100000).default(24),
  BACKUP_KEEP_DAILY: integer(0, 100000).optional(),
  BACKUP_KEEP_WEEKLY: integer(0, 100000).default(8),
  BACKUP_KEEP_MONTHLY: integer(0, 100000).default(12),
  IMAGE_PROVIDER: z.enum(['local', 'openai']).default('local'),
  WORKER_CONCURRENCY: integer(1, 64).default(2),
  GENERATION_LEASE_SECONDS: integer(2, 3600).default(60),
  GENERATION_TIMEOUT_SECONDS: integer(1, 3600).default(300),
  GENERATION_MAX_ATTEMPTS: integer(1, 100).default(5),
  RECONCILE_INTERVAL_SECONDS: integer(1, 86400).default(60),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: url(['http:', 'https:']).default('https://api.openai.com/v1'),
  ALERT_WEBHOOK_URL: url(['http:', 'https:']).optional(),
  S3_ENDPOINT: url(['http:', 'https:']).optional(),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('true'),
  S3_CA_FILE: z.string().trim().min(1).optional(),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_REGION: z.string().trim().default('us-east-1'),
});

export type { Config, S3Settings } from './types.ts';

/** Reads `.env` in the working directory; real environment variables win over it. */
export function readDotEnv(file = path.resolve('.env')): Record<string, string> {
  if (!existsSync(file)) return {};
  try {
    return parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (error) {
    throw new ConfigError(
      `The file ${file} could not be read as KEY=value lines: ${(error as Error).message}.`,
    );
  }
}

export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  options: { dotEnv?: boolean; cwd?: string } = {},
): Config {
  const cwd = options.cwd ?? process.cwd();
  const fromFile = options.dotEnv === false ? {} : readDotEnv(path.join(cwd, '.env'));
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [key, value] of Object.entries(env)) if (value !== undefined) merged[key] = value;
  // An empty value means "unset", as in shell scripts and Compose files.
  const relevant: Record<string, string | undefined> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = merged[key];
    relevant[key] = value === undefined || value === '' ? undefined : value;
  }
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0]);
    registerSecrets(relevant);
    const shown = SECRET_KEYS.has(key) ? '(hidden)' : JSON.stringify(maskUrl(relevant[key] ?? ''));
    throw new ConfigError(`${key} ${issue.message} (got ${shown}).`);
  }
  const e = parsed.data;
  registerSecrets(relevant);
  const dataDir = path.resolve(cwd, e.DATA_DIR);
  const databaseCaFile = readableFile('PGSSLROOTCERT', e.PGSSLROOTCERT, cwd);
  // libpq's own variable: openDatabase and the client programs (pg_dump…) read it from the environment, where
  // a value from .env must be too.
  if (databaseCaFile && env === process.env) process.env.PGSSLROOTCERT = databaseCaFile;
  checkCombinations(e);
  const redis = redisConfig(e, cwd);
  return {
    host: e.HOST,
    port: e.PORT,
    trustProxy: e.TRUST_PROXY === 'off' ? false : e.TRUST_PROXY,
    dataDir,
    promptsDir: path.resolve(cwd, e.PROMPTS_DIR),
    databaseUrl: e.DATABASE_URL,
    databaseCaFile,
    redisUrl: redis.url,
    storageUrl: e.STORAGE_URL ?? `file://${path.join(dataDir, 'objects')}`,
    postgres: { user: e.POSTGRES_USER, database: e.POSTGRES_DB, port: e.POSTGRES_PORT },
    redis: redis.settings,
    apiToken: e.API_TOKEN,
    adminToken: e.ADMIN_TOKEN,
    limits: { maxUploadBytes: e.MAX_UPLOAD_SIZE, maxPromptBytes: e.MAX_PROMPT_SIZE },
    logLevel: e.LOG_LEVEL,
    promptsRescanSeconds: e.PROMPTS_RESCAN_SECONDS,
    livenessTimeoutSeconds: e.LIVENESS_TIMEOUT_SECONDS,
    livenessFile: e.LIVENESS_FILE && path.resolve(cwd, e.LIVENESS_FILE),
    objectScrubBytesPerSecond: e.OBJECT_SCRUB_RATE,
    backup: {
      dir: path.resolve(cwd, e.BACKUP_DIR),
      retentionDays: e.BACKUP_RETENTION_DAYS,
      s3Uri: e.BACKUP_S3_URI,
      offsiteTargets: parseOffsiteTargets(e, cwd),
      password: e.BACKUP_PASSWORD,
      key: e.BACKUP_KEY,
      schedule: e.BACKUP_SCHEDULE,
      allowUnencryptedOffsite: e.BACKUP_ALLOW_UNENCRYPTED_OFFSITE === 'true',
      continuous: e.BACKUP_CONTINUOUS === 'on',
      sync: e.BACKUP_SYNC === 'on',
      databasePitr: e.BACKUP_DATABASE_PITR,
      pitrWindowSeconds: e.BACKUP_PITR_WINDOW,
      slotMaxWalBytes: e.BACKUP_SLOT_MAX_WAL,
      gcGraceSeconds: e.OBJECT_GC_GRACE,
      keep: {
        ...(e.BACKUP_KEEP_LAST !== undefined ? { last: e.BACKUP_KEEP_LAST } : {}),
        hourly: e.BACKUP_KEEP_HOURLY,
        daily: e.BACKUP_KEEP_DAILY ?? e.BACKUP_RETENTION_DAYS,
        weekly: e.BACKUP_KEEP_WEEKLY,
        monthly: e.BACKUP_KEEP_MONTHLY,
      },
    },
    drill: { schedule: e.DRILL_SCHEDULE, databaseUrl: e.DRILL_DATABASE_URL },
    imageProvider: e.IMAGE_PROVIDER,
    generation: {
      concurrency: e.WORKER_CONCURRENCY,
      leaseSeconds: e.GENERATION_LEASE_SECONDS,
      timeoutSeconds: e.GENERATION_TIMEOUT_SECONDS,
      maxAttempts: e.GENERATION_MAX_ATTEMPTS,
      reconcileIntervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
    },
    openai: { apiKey: e.OPENAI_API_KEY, baseUrl: e.OPENAI_BASE_URL },
    alertWebhookUrl: e.ALERT_WEBHOOK_URL,
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.AWS_REGION,
      forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
      accessKeyId: e.AWS_ACCESS_KEY_ID,
      secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
      caFile: readableFile('S3_CA_FILE', e.S3_CA_FILE, cwd),
    },
    source: relevant,
  };
}

/** Settings that are each valid alone but not together. */
function checkCombinations(e: z.infer<typeof envSchema>): void {
  if (e.API_TOKEN && e.ADMIN_TOKEN && e.API_TOKEN === e.ADMIN_TOKEN) {
    throw new ConfigError('API_TOKEN and ADMIN_TOKEN must differ, or client tokens would be admin tokens.');
  }
  if (e.AWS_ACCESS_KEY_ID && !e.AWS_SECRET_ACCESS_KEY) {
    throw new ConfigError('AWS_SECRET_ACCESS_KEY must be set when AWS_ACCESS_KEY_ID is.');
  }
}

/** Tells the log scrubber every secret of the configuration, so that no error message can carry one. */
function registerSecrets(values: Record<string, string | undefined>): void {
  for (const [key, value] of Object.entries(values)) {
    if (!value) continue;
    if (SECRET_KEYS.has(key)) registerSecret(value);
    if (key === 'BACKUP_OFFSITE_TARGETS') {
      for (const secret of offsiteSecrets(value)) registerSecret(secret);
      continue;
    }
    if (!value.includes('://')) continue;
    try {
      const url = parseConnectionUrl(value, { multiHost: true });
      registerSecret(url.password);
      for (const [param, secret] of url.params)
        if (SECRET_PARAMS.has(param.toLowerCase())) registerSecret(secret);
    } catch {
      // Not a connection URL: maskUrl still hides what sits between its user name and its last @.
      const at = value.lastIndexOf('@');
      const colon = value.indexOf(':', value.indexOf('://') + 3);
      if (at > colon && colon > 0) registerSecret(value.slice(colon + 1, at));
    }
  }
}

/** Where `up` and `serve` keep the generated admin token when ADMIN_TOKEN is unset. */
export function adminTokenPath(config: Config): string {
  return path.join(config.dataDir, 'secrets', 'admin-token');
}
