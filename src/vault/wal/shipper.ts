import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/config.ts';
import type { Sql } from '../../db/connection.ts';
import { fsyncDir } from '../../lib/files.ts';
import {
  deleteWalRecord,
  listWalKeys,
  type Repository,
  RepositoryNotFoundError,
  type WalRecord,
  type WalRecordKind,
  writeWalRecord,
} from '../repository/index.ts';
import { openRepository, type Target } from '../targets.ts';
import { IdleWal } from './idle-wal.ts';
import { formatLsn, isHistoryName, isSegmentName, parseSegmentName, segmentStart } from './lsn.ts';
import { readRange, readWhole, type StableChunks, storeAsTree, storeGrowingFile } from './tree-file.ts';
import { sampleWal, WalClock, type WalSample } from './wal-clock.ts';

export interface TargetProgress {
  target: string;
  timeline: number | undefined;
  shippedLsn: bigint | undefined;
  /** Every change committed before this moment is on the target. */
  recoverableUntil: Date | undefined;
  lagSeconds: number | undefined;
  error: string | undefined;
}

interface TargetState extends TargetProgress {
  repo: Repository | undefined;
  known: Set<string> | undefined;
  partial: RecordedPartial | undefined;
  /** WAL before this is on the target or holds nothing a restore needs (`idle-wal.ts`); at least shippedLsn. */
  coveredLsn: bigint | undefined;
  retryAt: number;
  failures: number;
  /** While it ships: when it started or last recorded something (a target that stops answering stalls it). */
  movedAt: number | undefined;
}

/** The partial segment last recorded, and its chunks that the next record of it reuses. */
interface RecordedPartial {
  name: string;
  endLsn: bigint;
  writtenAt: number;
  stable: StableChunks | undefined;
  record: WalRecord;
}

/** What one cycle found in the receiver's folder, and the primary's position then. */
interface Found {
  complete: string[];
  history: string[];
  partial: string | undefined;
  sample: WalSample;
}

/** A partial segment is rewritten at least this often, so the archive's own record of its reach stays fresh. */
const PARTIAL_REFRESH_MS = 10_000;
/** How long a cycle waits for its targets before reporting: a slow target ships on in the background. */
const CYCLE_WAIT_MS = 1_000;
/** How long stopping waits for targets still shipping: a region that hangs must not hold a restart. */
const DRAIN_MS = 10_000;
/** A target shipping this long without recording anything is reported as not answering. */
const STALLED_MS = 10_000;

/**
 * Ships what the receiver wrote into every target's repository (I11): history files and completed segments
 * as they appear, and the segment in progress up to the receiver's reported flush position. Targets ship side
 * by side: one that fails is retried with backoff, and neither it nor a slow one holds the others back; a
 * local segment is removed only once every target records it. Each record is written after its blobs (I6);
 * rerunning after a crash stores nothing twice.
 */
export class WalShipper {
  private readonly clock = new WalClock();
  private readonly states: TargetState[];
  /** Each target's shipping in flight, by its index. */
  private readonly running = new Map<number, Promise<void>>();
  /** Protect's own status writes, whose commit records carry nothing a restore needs. */
  readonly idle = new IdleWal();

  constructor(
    private readonly options: {
      walDir: string;
      targets: Target[];
      /** The configuration the targets' repositories open with (their password or key). */
      config: Config;
      sql: Sql;
    },
  ) {
    this.states = options.targets.map((target) => ({
      target: target.name,
      timeline: undefined,
      shippedLsn: undefined,
      recoverableUntil: undefined,
      lagSeconds: undefined,
      error: undefined,
      repo: undefined,
      known: undefined,
      partial: undefined,
      coveredLsn: undefined,
      retryAt: 0,
      failures: 0,
      movedAt: undefined,
    }));
  }

  progress(): TargetProgress[] {
    return this.states.map((state) => {
      const { target, timeline, shippedLsn, recoverableUntil, lagSeconds, error } = state;
      // A request that never answers fails only after the S3 client's timeouts (minutes): said before then.
      const still = state.movedAt === undefined ? 0 : Date.now() - state.movedAt;
      const stalled =
        still >= STALLED_MS
          ? `The target has not answered for ${Math.round(still / 1000)} s: its endpoint is unreachable or very slow; the other targets ship on.`
          : undefined;
      return { target, timeline, shippedLsn, recoverableUntil, lagSeconds, error: error ?? stalled };
    });
  }

  /**
   * Starts shipping to every target that is due and not still busy with an earlier cycle, waits for that up to
   * CYCLE_WAIT_MS (`drain`, when stopping: for everything in flight, up to DRAIN_MS), and reports every
   * target's progress. A target that hangs (an endpoint that stopped answering) keeps shipping in the
   * background while the others go on.
   */
  async cycle(options: { drain?: boolean } = {}): Promise<TargetProgress[]> {
    const sample = await sampleWal(this.options.sql);
    this.clock.add(sample);
    const files = await readdir(this.options.walDir).catch(() => [] as string[]);
    const complete = files.filter(isSegmentName).sort();
    const history = files.filter(isHistoryName).sort();
    const partial = files.find((name) => name.endsWith('.partial') && isSegmentName(name.slice(0, 24)));
    const found = { complete, history, partial: partial?.slice(0, 24), sample };
    const started: Array<Promise<void>> = [];
    for (const [index, state] of this.states.entries()) {
      if (this.running.has(index) || Date.now() < state.retryAt) continue;
      state.movedAt = Date.now();
      const run = this.ship(index, state, found).finally(() => {
        this.running.delete(index);
        state.movedAt = undefined;
      });
      this.running.set(index, run);
      started.push(run);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(options.drain ? [...this.running.values()] : started),
      new Promise((resolve) => (timer = setTimeout(resolve, options.drain ? DRAIN_MS : CYCLE_WAIT_MS))),
    ]);
    clearTimeout(timer);
    for (const state of this.states) {
      const { shippedLsn, coveredLsn } = state;
      const covered = coveredLsn !== undefined && coveredLsn > (shippedLsn ?? -1n) ? coveredLsn : shippedLsn;
      state.recoverableUntil = this.clock.coveredUntil(covered) ?? state.recoverableUntil;
      state.lagSeconds = state.recoverableUntil
        ? Math.max(0, (sample.time.getTime() - state.recoverableUntil.getTime()) / 1000)
        : undefined;
    }
    await this.removeShipped(complete, history);
    return this.progress();
  }

  private async ship(index: number, state: TargetState, found: Found): Promise<void> {
    try {
      await this.shipTo(index, state, found);
      state.error = undefined;
      state.failures = 0;
    } catch (error) {
      state.error = (error as Error).message;
      state.failures++;
      state.retryAt = Date.now() + Math.min(retryCap(index), 500 * 2 ** Math.min(state.failures, 6));
      state.repo = undefined;
      state.known = undefined;
      // A failed cycle may have left the repository short of what the cache assumes: cut it whole again.
      if (state.partial) state.partial.stable = undefined;
    }
  }

  private async openTarget(index: number, state: TargetState): Promise<Repository> {
    if (state.repo) return state.repo;
    const repo = await this.openLikeFirst(index);
    state.known = new Set((await listWalKeys(repo)).filter((k) => k.kind !== 'partial').map((k) => k.name));
    state.repo = repo;
    return repo;
  }

  /**
   * Every target shares the first one's keys, so snapshots and records copy between them as stored bytes: a
   * missing repository is made like the first target's, opened here when its own shipping has not yet.
   */
  private async openLikeFirst(index: number): Promise<Repository> {
    const { targets, config } = this.options;
    if (index === 0) return await openRepository(targets[0]!, config, { create: true });
    try {
      return await openRepository(targets[index]!, config);
    } catch (error) {
      if (!(error instanceof RepositoryNotFoundError)) throw error;
    }
    const like = this.states[0]!.repo ?? (await openRepository(targets[0]!, config, { create: true }));
    return await openRepository(targets[index]!, config, { create: true, like });
  }

  private async shipTo(index: number, state: TargetState, found: Found): Promise<void> {
    const repo = await this.openTarget(index, state);
    const known = state.known!;
    const { segmentBytes } = found.sample;
    for (const name of found.history.filter((n) => !known.has(n))) {
      await this.storeRecord(repo, 'history', name, path.join(this.options.walDir, name), {
        timeline: Number.parseInt(name.slice(0, 8), 16),
      });
      known.add(name);
      state.movedAt = Date.now();
    }
    for (const name of found.complete) {
      const { timeline, segno } = parseSegmentName(name, segmentBytes);
      const endLsn = segmentStart(segno + 1n, segmentBytes);
      if (!known.has(name)) {
        await this.storeRecord(repo, 'segment', name, path.join(this.options.walDir, name), {
          timeline,
          endLsn: formatLsn(endLsn),
          ...this.clock.covers(endLsn),
        });
        known.add(name);
        state.movedAt = Date.now();
      }
      if (state.partial?.name === name) {
        await deleteWalRecord(repo, 'partial', name).catch(() => {});
        state.partial = undefined;
      }
      state.timeline = timeline;
      if (state.shippedLsn === undefined || endLsn > state.shippedLsn) state.shippedLsn = endLsn;
    }
    await this.shipPartial(repo, state, found);
  }

  /** The segment in progress, up to the flush position the receiver reported before the file was read. */
  private async shipPartial(
    repo: Repository,
    state: TargetState,
    found: { partial: string | undefined; sample: WalSample },
  ): Promise<void> {
    const { partial: name, sample } = found;
    if (!name || sample.flushLsn === undefined) return;
    const { timeline, segno } = parseSegmentName(name, sample.segmentBytes);
    const start = segmentStart(segno, sample.segmentBytes);
    const valid = sample.flushLsn - start;
    if (valid <= 0n || valid > BigInt(sample.segmentBytes)) return;
    // A record whose chunks a failed cycle may have left unconfirmed (stable unset) is stored again in full.
    const previous = state.partial?.name === name && state.partial.stable ? state.partial : undefined;
    const file = path.join(this.options.walDir, `${name}.partial`);
    const nothingNew =
      previous &&
      (previous.endLsn >= sample.flushLsn ||
        (await this.idle.onlyIdleAfter(file, start, previous.endLsn, sample)));
    if (previous && nothingNew) {
      state.coveredLsn = sample.flushLsn;
      if (Date.now() - previous.writtenAt < PARTIAL_REFRESH_MS) return;
      // Nothing to store: the record is written again with the moment it now covers.
      previous.record = {
        ...previous.record,
        shippedAt: new Date().toISOString(),
        ...this.clock.covers(sample.flushLsn),
      };
      await writeWalRecord(repo, previous.record);
      previous.writtenAt = Date.now();
      return;
    }
    // Only the bytes after the last record's stable chunks are read and cut again: re-chunking the whole
    // segment every cycle cost a steady share of a core under write load.
    const reusable = state.partial?.name === name ? state.partial.stable : undefined;
    const stable = reusable && reusable.bytes <= Number(valid) ? reusable : undefined;
    const from = stable?.bytes ?? 0;
    const tail = await readRange(file, from, Number(valid) - from);
    if (!tail) return;
    const stored = await storeGrowingFile(repo, name, stable, tail);
    const record: WalRecord = {
      kind: 'partial',
      name,
      tree: stored.tree,
      size: stored.size,
      shippedAt: new Date().toISOString(),
      timeline,
      endLsn: formatLsn(sample.flushLsn),
      ...this.clock.covers(sample.flushLsn),
    };
    await writeWalRecord(repo, record);
    state.partial = { name, endLsn: sample.flushLsn, writtenAt: Date.now(), stable: stored.stable, record };
    state.timeline = timeline;
    if (state.shippedLsn === undefined || sample.flushLsn > state.shippedLsn)
      state.shippedLsn = sample.flushLsn;
  }

  private async storeRecord(
    repo: Repository,
    kind: WalRecordKind,
    name: string,
    source: string | Buffer,
    fields: Pick<WalRecord, 'timeline'> & Partial<WalRecord>,
  ): Promise<void> {
    const bytes = typeof source === 'string' ? await readWhole(source) : source;
    const stored = await storeAsTree(
      repo,
      name,
      (async function* () {
        yield bytes;
      })(),
    );
    await writeWalRecord(repo, {
      kind,
      name,
      tree: stored.tree,
      size: stored.size,
      shippedAt: new Date().toISOString(),
      ...fields,
    });
  }

  /** Completed segments every target records are removed from the receiver's folder (the vault holds them). */
  private async removeShipped(complete: string[], history: string[]): Promise<void> {
    let removed = false;
    for (const name of [...complete, ...history]) {
      if (this.states.every((s) => s.known?.has(name))) {
        // The newest history file stays: the receiver reads it to know its timeline.
        if (isHistoryName(name) && name === history.at(-1)) continue;
        await unlink(path.join(this.options.walDir, name)).catch(() => {});
        removed = true;
      }
    }
    if (removed) await fsyncDir(this.options.walDir);
  }
}

/**
 * The longest wait before a failed target is tried again. The local target (first) fails mostly on a full or
 * unwritable disk, which an operator may fix at any moment, and a retry there costs one local write: it is
 * tried every 2 s, so the stream catches up within seconds of space coming back. Offsite targets back off to 30 s.
 */
function retryCap(index: number): number {
  return index === 0 ? 2_000 : 30_000;
}
