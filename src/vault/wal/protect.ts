import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/config.ts';
import { openDatabase, type Sql } from '../../db/connection.ts';
import { sleep } from '../../lib/process.ts';
import { scheduleInterval } from '../../lib/schedule-interval.ts';
import { listBaseBackups, type Repository } from '../repository/index.ts';
import { openRepository, resolveTargets, type Target } from '../targets.ts';
import { copyBaseBackup, takeBaseBackup } from './base-backup.ts';
import { pruneContinuous } from './prune.ts';
import { WAL_RECEIVER_NAME, WalReceiver } from './receiver.ts';
import { WalShipper } from './shipper.ts';
import { statusTableUnlogged, writeWalStatus } from './status.ts';

export interface ProtectOptions {
  config: Config;
  databaseUrl: string;
  signal: AbortSignal;
  log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void };
  /** How often the stream is shipped; 500 ms meets the one-second recovery point (I11). */
  cycleMs?: number;
}

/** Where the receiver writes: on the backup disk, so synchronous mode's fsync is the backup's. */
export function receiverDir(config: Config): string {
  return path.join(config.backup.dir, 'incoming', 'wal');
}

/**
 * `trendgen protect`: continuous protection of PostgreSQL (I11). The receiver streams WAL into the backup
 * disk, the shipper records it on every target about twice a second, and a base backup is taken whenever the
 * newest one on the current timeline is older than BACKUP_SCHEDULE's interval (at once on first start).
 * A server that refuses replication (a managed service) is reported once and left to its provider's PITR.
 */
export class Protector {
  private readonly sql: Sql;
  private readonly receiver: WalReceiver;
  private readonly shipper: WalShipper;
  private readonly targets: Target[];
  private baseRunning: Promise<void> | undefined;
  private needBase = false;
  private gap: string | undefined;
  /** Gaps declared so far: a base backup during which one happened may start before the new stream does. */
  private gaps = 0;
  private lastBaseCheck = 0;
  /** The targets base backups are being copied to. */
  private readonly copying = new Set<string>();
  /** Whether a status write leaves only a commit record in the WAL, which then need not be shipped. */
  private statusIdle = false;

  constructor(private readonly options: ProtectOptions) {
    const { config } = options;
    this.sql = openDatabase(options.databaseUrl, { max: 2, localCommit: true });
    this.targets = resolveTargets(config);
    this.receiver = new WalReceiver({
      databaseUrl: options.databaseUrl,
      walDir: receiverDir(config),
      backupDir: config.backup.dir,
      onGap: (reason) => this.onGap(reason),
      log: (message) => options.log.warn(message),
    });
    this.shipper = new WalShipper({
      walDir: receiverDir(config),
      targets: this.targets,
      config,
      sql: this.sql,
    });
  }

  async run(): Promise<void> {
    const { signal, log } = this.options;
    try {
      const refused = await this.replicationRefused();
      if (refused) return await this.reportRefused(refused);
      const foreign = await this.foreignSystem();
      if (foreign) {
        log.error(foreign);
        return await this.reportRefused(foreign, 'failed');
      }
      this.statusIdle = await statusTableUnlogged(this.sql);
      this.receiver.start();
      log.info(`continuous protection on: WAL streams into ${receiverDir(this.options.config)}`);
      while (!signal.aborted) {
        await this.cycle();
        await sleep(this.options.cycleMs ?? 500);
      }
    } finally {
      // The last cycle runs while the receiver still reports its flush position, so what it has is recorded.
      await this.cycle({ drain: true }).catch(() => {});
      await this.receiver.stop();
      await this.baseRunning?.catch(() => {});
      await this.sql.end({ timeout: 5 });
    }
  }

  private async cycle(options: { drain?: boolean } = {}): Promise<void> {
    try {
      const progress = await this.shipper.cycle(options);
      const xid = await writeWalStatus(
        this.sql,
        this.receiver.state,
        progress,
        this.gap ?? this.receiver.lastError,
      );
      if (xid !== undefined && this.statusIdle) this.shipper.idle.note(xid);
      if (
        this.receiver.state === 'streaming' &&
        !this.baseRunning &&
        Date.now() - this.lastBaseCheck > 30_000
      ) {
        this.lastBaseCheck = Date.now();
        this.baseRunning = this.baseBackupIfDue().finally(() => {
          this.baseRunning = undefined;
        });
      }
    } catch (error) {
      this.options.log.error(`continuous protection cycle failed: ${(error as Error).message}`);
    }
  }

  /** The receiver streams through its slot, and the slot still holds the WAL it has not received. */
  private async streamEstablished(): Promise<boolean> {
    const [row] = await this.sql<{ ok: boolean }[]>`
      select exists (
        select 1 from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid
        where s.slot_name = ${WAL_RECEIVER_NAME} and r.state in ('streaming', 'catchup')
          and s.wal_status in ('reserved', 'extended')) as ok`;
    return Boolean(row?.ok);
  }

  private async replicationRefused(): Promise<string | undefined> {
    const [row] = await this.sql<{ allowed: boolean }[]>`
      select rolreplication or rolsuper as allowed from pg_roles where rolname = current_user`;
    if (row?.allowed) return undefined;
    return 'the database role may not open replication connections (a managed PostgreSQL?): the database is protected by scheduled logical snapshots and the provider’s point-in-time recovery, not by trendgen’s WAL stream';
  }

  /**
   * WAL records are named as PostgreSQL names its segments, and a new cluster (initdb after a lost disk, then a
   * snapshot restore) names its own from the start again: streamed into a vault that holds another system's
   * WAL, its segments would be taken for ones already recorded. Such a vault is left as it is, said so.
   */
  private async foreignSystem(): Promise<string | undefined> {
    const [primaryTarget] = this.targets;
    if (!primaryTarget) return undefined;
    const repo = await openRepository(primaryTarget, this.options.config, { create: true });
    const { backups } = await listBaseBackups(repo);
    if (backups.length === 0) return undefined;
    const [row] = await this.sql<
      { id: string }[]
    >`select system_identifier::text as id from pg_control_system()`;
    if (backups.some((b) => b.systemIdentifier === row!.id)) return undefined;
    const newest = backups.at(-1)!;
    return `Continuous protection is off: the vault at ${repo.location} streams another PostgreSQL system (${newest.systemIdentifier}, newest base backup ${newest.time}), not this server (${row!.id}), and mixing their WAL would corrupt both. Restore that system with trendgen restore latest, or give this server a new BACKUP_DIR; snapshots protect it meanwhile.`;
  }

  private async reportRefused(reason: string, state: 'refused' | 'failed' = 'refused'): Promise<void> {
    this.options.log.warn(reason);
    const progress = this.targets.map((t) => ({
      target: t.name,
      timeline: undefined,
      shippedLsn: undefined,
      recoverableUntil: undefined,
      lagSeconds: undefined,
      error: reason,
    }));
    while (!this.options.signal.aborted) {
      await writeWalStatus(this.sql, state, progress).catch(() => {});
      await sleep(5_000);
    }
  }

  /** The slot's WAL was removed before it was received: start a new slot and a new base backup after the gap. */
  private onGap(reason: string): void {
    this.gap = `The WAL stream has a gap (${reason}); a new base backup is being taken, and moments inside the gap cannot be restored.`;
    this.needBase = true;
    this.gaps++;
    void (async () => {
      await this.sql`select pg_drop_replication_slot(slot_name) from pg_replication_slots
        where slot_name = ${WAL_RECEIVER_NAME} and not active`.catch(() => {});
      const dir = receiverDir(this.options.config);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.endsWith('.partial')) await unlink(path.join(dir, name)).catch(() => {});
      }
    })();
  }

  private async baseBackupIfDue(): Promise<void> {
    const { config, log } = this.options;
    try {
      const [first, ...others] = this.targets;
      if (!first) return;
      const primary = await openRepository(first, config, { create: true });
      // A base backup replays from the stream: taken while the receiver is not yet streaming through a slot that
      // holds its WAL (it may be failing on WAL removed in a gap), its start could lie before what the stream
      // will ever have, and it would never become consistent. Asked again in two seconds.
      if (!(await this.streamEstablished())) {
        this.lastBaseCheck = Date.now() - 28_000;
        return;
      }
      const gapsBefore = this.gaps;
      const [row] = await this.sql<{ tli: number }[]>`select timeline_id as tli from pg_control_checkpoint()`;
      const newest = (await listBaseBackups(primary)).backups.filter((b) => b.timeline === row!.tli).at(-1);
      const interval = scheduleInterval(config.backup.schedule, new Date(), 'BACKUP_SCHEDULE') ?? 86_400_000;
      if (this.needBase || !newest || Date.now() - Date.parse(newest.time) >= interval) {
        log.info('taking a base backup for point-in-time restore');
        const record = await takeBaseBackup(primary, this.options.databaseUrl);
        if (this.gaps === gapsBefore) {
          this.needBase = false;
          this.gap = undefined;
        } else {
          log.warn('the WAL stream had a gap while the base backup ran: another one is taken');
          this.lastBaseCheck = 0;
        }
        log.info(
          `base backup ${record.id} stored (${record.size} bytes, WAL ${record.startLsn} to ${record.endLsn})`,
        );
        await pruneContinuous(primary, config.backup.pitrWindowSeconds);
      }
      // Each copy on its own, not awaited: a target whose requests hang delays no base backup of the others.
      for (const target of others.filter((t) => !this.copying.has(t.name))) {
        this.copying.add(target.name);
        void this.copyBaseBackups(primary, target).then((copied) => {
          this.copying.delete(target.name);
          // A target that could not be given its base backups is asked again in five seconds, not thirty.
          if (!copied) this.lastBaseCheck = Math.min(this.lastBaseCheck, Date.now() - 25_000);
        });
      }
    } catch (error) {
      log.error(`base backup failed: ${(error as Error).message}; retrying in a minute`);
      this.lastBaseCheck = Date.now() - 30_000 + 60_000;
    }
  }

  /**
   * Gives another target every base backup of the first one it lacks: the one just taken, and those it missed
   * while unreachable, so it can restore the window again once it is back. Each target on its own: one that
   * fails is said so (false) and asked again soon.
   */
  private async copyBaseBackups(primary: Repository, target: Target): Promise<boolean> {
    const { config, log } = this.options;
    try {
      const repo = await openRepository(target, config, { create: true, like: primary });
      const held = new Set((await listBaseBackups(repo)).backups.map((b) => b.id));
      const missing = (await listBaseBackups(primary)).backups.filter((b) => !held.has(b.id));
      for (const record of missing) await copyBaseBackup(primary, repo, record);
      // Pruned when something came: the window moves at each new base backup.
      if (missing.length > 0) await pruneContinuous(repo, config.backup.pitrWindowSeconds);
      return true;
    } catch (error) {
      log.warn(`base backups could not be copied to ${target.name}: ${(error as Error).message}`);
      return false;
    }
  }
}

export async function runProtect(options: ProtectOptions): Promise<void> {
  await new Protector(options).run();
}
