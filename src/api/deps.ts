import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import type { GenerationJobData } from '../generation/queue.ts';
import type { LivenessStatus } from '../lib/liveness.ts';
import type { ObjectStore } from '../objects/store.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { Tokens } from './auth.ts';

/** What every route is built from; routes take it, the server passes it. */
export interface ApiDeps {
  config: Config;
  sql: Sql;
  redis: Redis;
  queue: Queue<GenerationJobData>;
  /** Where the database and Redis are, for work the API starts itself (a backup on request). */
  urls: { database: string; redis: string };
  objects: ObjectStore;
  tokens: Tokens;
  metrics: Metrics;
  logger: Logger;
  /** Whether this process's thread pool still runs jobs: /healthz fails when it does not. */
  liveness?: { status(): LivenessStatus };
}
