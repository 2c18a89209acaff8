import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { ensureDatabase } from '../db/connection.ts';
import { embeddedPostgres, embeddedRedis } from '../embedded/connect.ts';
import { assertPortFree } from '../lib/process.ts';
import { checkRedisSetup } from '../lib/redis-check.ts';

/**
 * The embedded PostgreSQL and Redis of `up` (each only when its URL is not configured): started, or adopted
 * when an instance left running by a killed `up` or another command is found, and brought back when they die.
 */
export class SupervisedServices {
  private readonly pg;
  private readonly redis;
  databaseUrl: string;
  redisUrl: string;
  private ensuring: Promise<void> | undefined;
  private redisChecked = false;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.pg = config.databaseUrl ? undefined : embeddedPostgres(config);
    this.redis = config.redisUrl ? undefined : embeddedRedis(config);
    this.databaseUrl = config.databaseUrl ?? '';
    this.redisUrl = config.redisUrl ?? '';
  }

  /**
   * One start at a time: the watchdog and several dying children can all ask at once, and two `pg_ctl start`
   * on one data folder make one of them fail.
   */
  ensure(): Promise<void> {
    this.ensuring ??= this.start().finally(() => {
      this.ensuring = undefined;
    });
    return this.ensuring;
  }

  private async start(): Promise<void> {
    if (this.pg) {
      const running = this.pg.findRunning() ?? (await this.startPostgres(this.pg));
      await ensureDatabase(this.pg.url(running.port, 'postgres'), this.config.postgres.database);
      this.databaseUrl = running.url;
    }
    if (!this.redis && this.redisUrl && !this.redisChecked) {
      // Before any child starts: each would fail on the same certificate or password, and be restarted for ever.
      await checkRedisSetup(this.redisUrl);
      this.redisChecked = true;
    }
    if (this.redis) {
      const running = (await this.redis.findRunning()) ?? (await this.startRedis(this.redis));
      this.redisUrl = running.url;
    }
  }

  /** A fixed port another program holds is one sentence naming POSTGRES_PORT, not a failed start to decode. */
  private async startPostgres(pg: NonNullable<SupervisedServices['pg']>) {
    await assertPortFree('127.0.0.1', this.config.postgres.port, 'POSTGRES_PORT');
    return pg.start();
  }

  private async startRedis(redis: NonNullable<SupervisedServices['redis']>) {
    await assertPortFree('127.0.0.1', this.config.redis.port, 'REDIS_PORT');
    return redis.start();
  }

  /** The embedded servers are children too: if one died, this brings it back. */
  async revive(): Promise<void> {
    if (this.pg && !this.pg.findRunning()) {
      this.logger.error('PostgreSQL is not running; restarting it');
      await this.ensure().catch((error) => this.logger.error({ err: error }, 'PostgreSQL restart failed'));
    }
    if (this.redis && !(await this.redis.findRunning())) {
      this.logger.error('Redis is not running; restarting it');
      await this.ensure().catch((error) => this.logger.error({ err: error }, 'Redis restart failed'));
    }
  }

  /** Redis first (it fsyncs its AOF), then PostgreSQL's fast shutdown. */
  async stop(): Promise<void> {
    await this.redis?.stop().catch((error) => this.logger.error({ err: error }, 'stopping Redis failed'));
    await this.pg?.stop().catch((error) => this.logger.error({ err: error }, 'stopping PostgreSQL failed'));
  }
}
