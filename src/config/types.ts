import type { OffsiteTarget } from './offsite-targets.ts';
import type { RedisSettings } from './redis.ts';

/** What `loadConfig` makes of the environment (config.ts checks it; this is its shape). */
export interface S3Settings {
  /** What sets these, named in sentences about them; unset: S3_ENDPOINT and AWS_* (the object store's). */
  configuredBy?: string | undefined;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  /** A CA (PEM) trusted for an https S3_ENDPOINT besides the usual public ones. */
  caFile?: string | undefined;
}

export interface Config {
  host: string;
  port: number;
  /** Proxies whose X-Forwarded-For/-Proto are believed (so the console cookie is Secure behind TLS); false: none. */
  trustProxy: string | false;
  dataDir: string;
  promptsDir: string;
  /** Undefined means: run the embedded PostgreSQL under dataDir. */
  databaseUrl: string | undefined;
  /** PGSSLROOTCERT: the CA that signed PostgreSQL's certificate (libpq's variable, read by every connection). */
  databaseCaFile: string | undefined;
  /** Undefined: the embedded Redis under dataDir. Else one connection string, every REDIS_* setting folded in. */
  redisUrl: string | undefined;
  storageUrl: string;
  postgres: { user: string; database: string; port: number };
  redis: RedisSettings;
  apiToken: string | undefined;
  adminToken: string | undefined;
  limits: { maxUploadBytes: number; maxPromptBytes: number };
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  promptsRescanSeconds: number;
  /** A service process whose thread pool or event loop is stuck this long is unhealthy (and restarted by `up`). */
  livenessTimeoutSeconds: number;
  /** LIVENESS_FILE: touched at every healthy heartbeat, for an exec liveness probe (Kubernetes). */
  livenessFile: string | undefined;
  /** Bytes per second the scheduler's scrub re-hashes the object store at; undefined: no scrub. */
  objectScrubBytesPerSecond: number | undefined;
  backup: {
    dir: string;
    retentionDays: number;
    s3Uri: string | undefined;
    /** BACKUP_OFFSITE_TARGETS: more offsite targets, each with its own S3 settings. */
    offsiteTargets: OffsiteTarget[];
    password: string | undefined;
    key: string | undefined;
    schedule: string;
    allowUnencryptedOffsite: boolean;
    /** Continuous protection: WAL streamed and objects shipped as they are written (I11). */
    continuous: boolean;
    /** Commits and uploads wait for the local backup disk (RPO 0). */
    sync: boolean;
    /** Who keeps the database's point-in-time recovery: trendgen's WAL stream, CloudNativePG or the provider. */
    databasePitr: 'trendgen' | 'cloudnativepg' | 'provider';
    pitrWindowSeconds: number;
    slotMaxWalBytes: number;
    /** The collector leaves orphans and leftovers younger than this alone, and runs this often (I3). */
    gcGraceSeconds: number;
    keep: { last?: number; hourly: number; daily: number; weekly: number; monthly: number };
  };
  drill: { schedule: string; databaseUrl: string | undefined };
  imageProvider: 'local' | 'openai';
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
