import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import type { Repository, WalRecord } from '../repository/index.ts';
import { limiter } from '../repository/io.ts';
import { DEFAULT_SEGMENT_BYTES, formatLsn, isSegmentName, parseLsn } from './lsn.ts';
import type { PointInTimePlan } from './pitr-plan.ts';

/** The WAL side of a restore to a moment: which records, fetched how, and where the replay stops. */

/**
 * Where the replay stops: PostgreSQL's `recovery_target_lsn`, before or after the record there. Undefined: the
 * fetched WAL holds nothing to leave out, and all of it is replayed.
 */
export interface ReplayStop {
  lsn: bigint;
  inclusive: boolean;
  /** The time of the last commit the replay keeps, when one after the base backup is known. */
  time: string | undefined;
}

/**
 * The stop that keeps every commit up to `last` and none from `next` on. It is set before `next`, not after
 * `last`: the last kept commit may lie inside the base backup (the moment is just after it), and a stop there
 * would be before the consistent point, or after the last record fetched when the base backup ended on a
 * segment's boundary ("recovery ended before configured recovery target was reached"). Only when `next` lies
 * inside the base backup (clocks that disagree, or objects older than it) does it stop at the base backup's
 * end, the earliest stop PostgreSQL accepts.
 */
export function replayStop(
  baseEnd: bigint,
  last: { lsn: bigint; time: string } | undefined,
  next: bigint | undefined,
): ReplayStop | undefined {
  const time = last && last.lsn >= baseEnd ? last.time : undefined;
  if (next === undefined) return undefined;
  if (next > baseEnd) return { lsn: next, inclusive: false, time };
  return { lsn: last && last.lsn > baseEnd ? last.lsn : baseEnd, inclusive: true, time };
}

/**
 * The stop for `target`, read with pg_waldump (times in UTC, in µs) along the plan's path: each timeline from
 * where its leg begins (or the base backup's start) to where the next forked, up to the first commit after it.
 */
export async function stopPoint(walDir: string, plan: PointInTimePlan): Promise<ReplayStop | undefined> {
  const targetMicros = BigInt(plan.target!.getTime()) * 1000n;
  const baseStart = parseLsn(plan.base.startLsn);
  let last: { lsn: bigint; time: string } | undefined;
  let next: bigint | undefined;
  for (const leg of plan.legs) {
    // BigInts: Math.max does not take them.
    let from = leg.from;
    if (baseStart > from) from = baseStart;
    const found = await commitsAround(walDir, leg.timeline, from, leg.until, targetMicros);
    if (found.last && (!last || found.last.lsn >= last.lsn)) last = found.last;
    next = found.next;
    if (next !== undefined) break;
  }
  return replayStop(parseLsn(plan.base.endLsn), last, next);
}

/** On one timeline: the last commit at or before the target, and the first one after it. */
async function commitsAround(
  walDir: string,
  timeline: number,
  from: bigint,
  until: bigint | undefined,
  targetMicros: bigint,
): Promise<{ last?: { lsn: bigint; time: string }; next?: bigint }> {
  const args = ['-p', walDir, '-t', String(timeline), '-s', formatLsn(from), '-r', 'Transaction'];
  if (until !== undefined) args.push('-e', formatLsn(until));
  const line =
    /lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC/;
  // Read as a stream, line by line, and stopped at the first commit past the target: however much WAL lies
  // between the base backup and the target, nothing is cut short (a buffered read could end early and make
  // the replay stop at an earlier commit than asked).
  const child = spawn(findPostgresBinary('pg_waldump'), args, {
    env: { ...process.env, TZ: 'UTC' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const found: { last?: { lsn: bigint; time: string }; next?: bigint } = {};
  for await (const text of createInterface({ input: child.stdout! })) {
    const match = line.exec(text);
    if (!match) continue;
    const micros =
      BigInt(Date.parse(`${match[2]}T${match[3]}Z`)) * 1000n + BigInt((match[4] ?? '').padEnd(6, '0') || '0');
    const lsn = parseLsn(match[1]!);
    if (micros > targetMicros) {
      found.next = lsn;
      break;
    }
    if (!found.last || lsn >= found.last.lsn)
      found.last = { lsn, time: new Date(Number(micros / 1000n)).toISOString() };
  }
  // pg_waldump ends with an error at the end of the WAL it was given; past the target it is simply stopped.
  child.kill('SIGKILL');
  await exited;
  return found;
}

/**
 * WAL records restored at once. The fetch runs beside the base backup's extraction, the longer of the two, and
 * takes CPU from it: with a 1.6 GB base backup and 26 segments, 4 at once ended the extraction after 4.1-4.7 s,
 * 2 after 3.8-3.9 s (3.0-3.1 s alone), the WAL still done long before (1.6-1.8 s); alone, 26 segments took the
 * same 0.6 s at 2 and at 4.
 */
const WAL_FETCH_CONCURRENCY = 2;

/**
 * The part of the plan's WAL that a restore to its target needs: up to the first record whose WAL covers
 * the target (every commit at or before it lies in that record or earlier), and never short of the base
 * backup's end. Everything when the target is the archive's end or beyond what the records cover.
 */
export function walNeeded(plan: PointInTimePlan): { wal: WalRecord[]; trimmed: boolean } {
  if (!plan.target) return { wal: plan.wal, trimmed: false };
  const baseEnd = parseLsn(plan.base.endLsn);
  const index = plan.wal.findIndex(
    (record) =>
      record.coversUntil !== undefined &&
      Date.parse(record.coversUntil) >= plan.target!.getTime() &&
      record.endLsn !== undefined &&
      parseLsn(record.endLsn) >= baseEnd,
  );
  if (index < 0 || index === plan.wal.length - 1) return { wal: plan.wal, trimmed: false };
  return { wal: plan.wal.slice(0, index + 1), trimmed: true };
}

/** Fetches WAL records, verified, into `walDir`; a partial segment is padded to a whole one with zeros. */
export async function fetchWal(
  repo: Repository,
  plan: PointInTimePlan,
  wal: WalRecord[],
  walDir: string,
  receivedDir?: string,
): Promise<number> {
  mkdirSync(walDir, { recursive: true });
  const limit = limiter(WAL_FETCH_CONCURRENCY);
  await Promise.all(
    [...plan.history, ...wal].map((record) =>
      limit(async () => {
        // Scratch: the recovery replays it (and its end checkpoint makes the result durable).
        await repo.restoreTree(record.tree, walDir, { durable: false });
        if (record.kind === 'partial') truncateSync(path.join(walDir, record.name), DEFAULT_SEGMENT_BYTES);
      }),
    ),
  );
  return receivedDir ? addReceivedWal(plan, walDir, receivedDir) : 0;
}

/** Segments of the plan's last timeline the receiver holds beyond the recorded chain (the newest one may be partial). */
function addReceivedWal(plan: PointInTimePlan, walDir: string, receivedDir: string): number {
  if (!existsSync(receivedDir)) return 0;
  const last = plan.wal.at(-1);
  const lastComplete = last?.kind === 'segment' ? last.name : undefined;
  const prefix = plan.timeline.toString(16).toUpperCase().padStart(8, '0');
  let added = 0;
  for (const file of readdirSync(receivedDir).sort()) {
    const name = file.replace(/\.partial$/, '');
    if (!isSegmentName(name) || !name.startsWith(prefix)) continue;
    if (last && (name < last.name || name === lastComplete)) continue;
    // A copy, never a link: the restore hard-links these into pg_wal, where PostgreSQL may recycle and rewrite them.
    copyFileSync(path.join(receivedDir, file), path.join(walDir, name));
    if (file.endsWith('.partial')) truncateSync(path.join(walDir, name), DEFAULT_SEGMENT_BYTES);
    added++;
  }
  return added;
}
