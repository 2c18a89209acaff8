import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { Cron } from 'croner';
import { z } from 'zod';

/** Thrown for a wrong configuration value: the message is one sentence naming the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const SECRET_KEYS = new Set([
  'API_TOKEN',
  'ADMIN_TOKEN',
  'BACKUP_PASSWORD',
  'OPENAI_API_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'ALERT_WEBHOOK_URL',
]);

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const sizeInBytes = z
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

const url = (protocols: string[]) =>
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

const schedule = (fallback: string) =>
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

const token = z.string().min(16, 'must be at least 16 characters long');

const envSchema = z.object({
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  PORT: integer(0, 65535).default(8080),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  PROMPTS_DIR: z.string().trim().min(1).default('./prompts'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
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
  BACKUP_DIR: z.string().trim().min(1).default('./backups'),
  BACKUP_RETENTION_DAYS: integer(1, 36500).default(14),
  BACKUP_S3_URI: url(['s3:']).optional(),
  BACKUP_PASSWORD: z.string().min(8, 'must be at least 8 characters long').optional(),
  BACKUP_KEY: z.optional(z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hexadecimal characters')),
  BACKUP_SCHEDULE: schedule('0 * * * *'),
  DRILL_SCHEDULE: schedule('0 4 * * 0'),
  DRILL_DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  BACKUP_ALLOW_UNENCRYPTED_OFFSITE: z.enum(['true', 'false']).default('false'),
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
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_REGION: z.string().trim().default('us-east-1'),
});

type Env = z.infer<typeof envSchema>;

export interface S3Settings {
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  promptsDir: string;
  /** Undefined means: run the embedded PostgreSQL under dataDir. */
  databaseUrl: string | undefined;
  /** Undefined means: run the embedded Redis under dataDir. */
  redisUrl: string | undefined;
  storageUrl: string;
  postgres: { user: string; database: string; port: number };
  redis: { port: number; appendfsync: 'everysec' | 'always' };
  apiToken: string | undefined;
  adminToken: string | undefined;
  limits: { maxUploadBytes: number; maxPromptBytes: number };
  logLevel: Env['LOG_LEVEL'];
  promptsRescanSeconds: number;
  backup: {
    dir: string;
    retentionDays: number;
    s3Uri: string | undefined;
    password: string | undefined;
    key: string | undefined;
    schedule: string;
    allowUnencryptedOffsite: boolean;
    keep: { last?: number; hourly: number; daily: number; weekly: number; monthly: number };
  };
  drill: { schedule: string; databaseUrl: string | undefined };
  imageProvider: Env['IMAGE_PROVIDER'];
  generation: {
    concurrency: number;
    leaseSeconds: number;
    timeoutSeconds: number;
    maxAttempts: number;
    reconcileIntervalSeconds: number;
  };
  openai: { apiKey: string | undefined; baseUrl: string };
  alertWebhookUrl: string | undefined;
  s3: S3Settings;
  /** The raw variables that produced this config, for `trendgen config`. */
  source: Record<string, string | undefined>;
}

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
    const shown = SECRET_KEYS.has(key) ? '(hidden)' : JSON.stringify(relevant[key]);
    throw new ConfigError(`${key} ${issue.message} (got ${shown}).`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(cwd, e.DATA_DIR);
  if (e.API_TOKEN && e.ADMIN_TOKEN && e.API_TOKEN === e.ADMIN_TOKEN) {
    throw new ConfigError('API_TOKEN and ADMIN_TOKEN must differ, or client tokens would be admin tokens.');
  }
  if (e.AWS_ACCESS_KEY_ID && !e.AWS_SECRET_ACCESS_KEY) {
    throw new ConfigError('AWS_SECRET_ACCESS_KEY must be set when AWS_ACCESS_KEY_ID is.');
  }
  return {
    host: e.HOST,
    port: e.PORT,
    dataDir,
    promptsDir: path.resolve(cwd, e.PROMPTS_DIR),
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    storageUrl: e.STORAGE_URL ?? `file://${path.join(dataDir, 'objects')}`,
    postgres: { user: e.POSTGRES_USER, database: e.POSTGRES_DB, port: e.POSTGRES_PORT },
    redis: { port: e.REDIS_PORT, appendfsync: e.REDIS_APPENDFSYNC },
    apiToken: e.API_TOKEN,
    adminToken: e.ADMIN_TOKEN,
    limits: { maxUploadBytes: e.MAX_UPLOAD_SIZE, maxPromptBytes: e.MAX_PROMPT_SIZE },
    logLevel: e.LOG_LEVEL,
    promptsRescanSeconds: e.PROMPTS_RESCAN_SECONDS,
    backup: {
      dir: path.resolve(cwd, e.BACKUP_DIR),
      retentionDays: e.BACKUP_RETENTION_DAYS,
      s3Uri: e.BACKUP_S3_URI,
      password: e.BACKUP_PASSWORD,
      key: e.BACKUP_KEY,
      schedule: e.BACKUP_SCHEDULE,
      allowUnencryptedOffsite: e.BACKUP_ALLOW_UNENCRYPTED_OFFSITE === 'true',
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
    },
    source: relevant,
  };
}

/** The effective configuration as `KEY=value` pairs with secrets and URL passwords masked. */
export function describeConfig(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  const effective: Record<string, string | number | undefined> = {
    HOST: config.host,
    PORT: config.port,
    DATA_DIR: config.dataDir,
    PROMPTS_DIR: config.promptsDir,
    DATABASE_URL: config.databaseUrl ?? '(embedded PostgreSQL under DATA_DIR/postgres)',
    REDIS_URL: config.redisUrl ?? '(embedded Redis under DATA_DIR/redis)',
    STORAGE_URL: config.storageUrl,
    POSTGRES_USER: config.postgres.user,
    POSTGRES_DB: config.postgres.database,
    POSTGRES_PORT: config.postgres.port || '(free port)',
    REDIS_PORT: config.redis.port || '(free port)',
    REDIS_APPENDFSYNC: config.redis.appendfsync,
    API_TOKEN: config.apiToken,
    ADMIN_TOKEN: config.adminToken ?? '(generated into DATA_DIR/secrets/admin-token)',
    MAX_UPLOAD_SIZE: config.limits.maxUploadBytes,
    MAX_PROMPT_SIZE: config.limits.maxPromptBytes,
    LOG_LEVEL: config.logLevel,
    PROMPTS_RESCAN_SECONDS: config.promptsRescanSeconds,
    BACKUP_DIR: config.backup.dir,
    BACKUP_RETENTION_DAYS: config.backup.retentionDays,
    BACKUP_S3_URI: config.backup.s3Uri,
    BACKUP_PASSWORD: config.backup.password,
    BACKUP_SCHEDULE: config.backup.schedule,
    BACKUP_ALLOW_UNENCRYPTED_OFFSITE: String(config.backup.allowUnencryptedOffsite),
    BACKUP_KEEP_LAST: config.backup.keep.last,
    BACKUP_KEEP_HOURLY: config.backup.keep.hourly,
    BACKUP_KEEP_DAILY: config.backup.keep.daily,
    BACKUP_KEEP_WEEKLY: config.backup.keep.weekly,
    BACKUP_KEEP_MONTHLY: config.backup.keep.monthly,
    DRILL_SCHEDULE: config.drill.schedule,
    DRILL_DATABASE_URL: config.drill.databaseUrl,
    IMAGE_PROVIDER: config.imageProvider,
    WORKER_CONCURRENCY: config.generation.concurrency,
    GENERATION_LEASE_SECONDS: config.generation.leaseSeconds,
    GENERATION_TIMEOUT_SECONDS: config.generation.timeoutSeconds,
    GENERATION_MAX_ATTEMPTS: config.generation.maxAttempts,
    RECONCILE_INTERVAL_SECONDS: config.generation.reconcileIntervalSeconds,
    OPENAI_API_KEY: config.openai.apiKey,
    OPENAI_BASE_URL: config.openai.baseUrl,
    ALERT_WEBHOOK_URL: config.alertWebhookUrl,
    S3_ENDPOINT: config.s3.endpoint,
    S3_FORCE_PATH_STYLE: String(config.s3.forcePathStyle),
    AWS_ACCESS_KEY_ID: config.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: config.s3.secretAccessKey,
    AWS_REGION: config.s3.region,
  };
  for (const [key, value] of Object.entries(effective)) {
    if (value === undefined) out[key] = '(unset)';
    else if (SECRET_KEYS.has(key) && config.source[key] !== undefined) out[key] = '********';
    else out[key] = maskUrlPassword(String(value));
  }
  return out;
}

export function maskUrlPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]+@/i, '$1:********@');
}

/** Where `up` and `serve` keep the generated admin token when ADMIN_TOKEN is unset. */
export function adminTokenPath(config: Config): string {
  return path.join(config.dataDir, 'secrets', 'admin-token');
}
