import { maskUrl } from '../lib/connection-url.ts';
import { type Config, SECRET_KEYS } from './config.ts';

/** The effective configuration as `KEY=value` pairs with secrets and URL passwords masked. */
export function describeConfig(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  const effective: Record<string, string | number | undefined> = {
    HOST: config.host,
    PORT: config.port,
    TRUST_PROXY: config.trustProxy || 'off',
    DATA_DIR: config.dataDir,
    PROMPTS_DIR: config.promptsDir,
    DATABASE_URL: config.databaseUrl ?? '(embedded PostgreSQL under DATA_DIR/postgres)',
    PGSSLROOTCERT: config.databaseCaFile,
    REDIS_URL:
      config.source.REDIS_URL ??
      (config.redisUrl
        ? '(unset: the master named by REDIS_SENTINELS)'
        : '(embedded Redis under DATA_DIR/redis)'),
    REDIS_SENTINELS: config.redis.sentinels,
    REDIS_SENTINEL_MASTER: config.redis.sentinelMaster,
    REDIS_SENTINEL_PASSWORD: config.source.REDIS_SENTINEL_PASSWORD,
    REDIS_TLS_CA: config.redis.tlsCa,
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
    LIVENESS_TIMEOUT_SECONDS: config.livenessTimeoutSeconds,
    LIVENESS_FILE: config.livenessFile,
    OBJECT_SCRUB_RATE:
      config.objectScrubBytesPerSecond === undefined ? 'off' : `${config.objectScrubBytesPerSecond} bytes/s`,
    BACKUP_DIR: config.backup.dir,
    BACKUP_RETENTION_DAYS: config.backup.retentionDays,
    BACKUP_S3_URI: config.backup.s3Uri,
    BACKUP_OFFSITE_TARGETS: config.backup.offsiteTargets.map((t) => t.shown).join(' ') || undefined,
    BACKUP_PASSWORD: config.backup.password,
    BACKUP_SCHEDULE: config.backup.schedule,
    BACKUP_ALLOW_UNENCRYPTED_OFFSITE: String(config.backup.allowUnencryptedOffsite),
    BACKUP_CONTINUOUS: config.backup.continuous ? 'on' : 'off',
    BACKUP_SYNC: config.backup.sync ? 'on' : 'off',
    BACKUP_DATABASE_PITR: config.backup.databasePitr,
    BACKUP_PITR_WINDOW: config.source.BACKUP_PITR_WINDOW ?? '7d',
    BACKUP_SLOT_MAX_WAL: config.backup.slotMaxWalBytes,
    OBJECT_GC_GRACE: config.backup.gcGraceSeconds,
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
    S3_CA_FILE: config.s3.caFile,
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

/** A value with every URL credential masked (user-info passwords, `?password=` and other secret parameters). */
export function maskUrlPassword(value: string): string {
  return maskUrl(value);
}
