import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { formatLsn, parseLsn } from './lsn.ts';
import type { ObjectBarrier, PointInTimePlan } from './pitr-plan.ts';
import { type ReplayStop, replayStop } from './restore-wal.ts';

const MARKER_PREFIX = 'trendgen-object';
const COMMIT =
  /tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: COMMIT (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC(?:.*; subxacts:((?: \d+)+))?/;
const MARKER =
  /tx:\s+(\d+), lsn: .*desc: MESSAGE transactional, prefix "([^"]*)"; payload \(\d+ bytes\): ([0-9A-F ]*)/;

/**
 * Where the replay stops, scanning the plan's path from the base backup: past the objects' watermark, before the
 * first commit whose transaction made live, by the WAL's markers (migration 0019: a transactional logical message
 * `trendgen-object` naming the key), an object the vault does not hold (I8); with none, at the end of the WAL
 * fetched. Commits dated at or before the watermark are held by its claim.
 */
export async function stopBeforeUnheldObject(
  walDir: string,
  plan: PointInTimePlan,
  barrier: ObjectBarrier,
): Promise<{ stop: ReplayStop | undefined; atObject: boolean }> {
  const baseStart = parseLsn(plan.base.startLsn);
  const watermarkMicros = BigInt(barrier.watermark.getTime()) * 1000n;
  const unheld = new Set<string>();
  let last: { lsn: bigint; time: string } | undefined;
  let next: bigint | undefined;
  for (const leg of plan.legs) {
    let from = leg.from;
    if (baseStart > from) from = baseStart;
    const args = ['-p', walDir, '-t', String(leg.timeline), '-s', formatLsn(from)];
    if (leg.until !== undefined) args.push('-e', formatLsn(leg.until));
    args.push('-r', 'Transaction', '-r', 'LogicalMessage');
    const child = spawn(findPostgresBinary('pg_waldump'), args, {
      env: { ...process.env, TZ: 'UTC' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    for await (const text of createInterface({ input: child.stdout! })) {
      const marker = MARKER.exec(text);
      if (marker) {
        if (marker[2] !== MARKER_PREFIX) continue;
        const key = Buffer.from(marker[3]!.replaceAll(' ', ''), 'hex').toString('utf8');
        if (!barrier.held.has(key)) unheld.add(marker[1]!);
        continue;
      }
      const commit = COMMIT.exec(text);
      if (!commit) continue;
      const micros =
        BigInt(Date.parse(`${commit[3]}T${commit[4]}Z`)) * 1000n +
        BigInt((commit[5] ?? '').padEnd(6, '0') || '0');
      // A marker written in a subtransaction carries the subtransaction's id; its commit lists it.
      const xids = [commit[1]!, ...(commit[6]?.trim().split(/\s+/) ?? [])];
      const lsn = parseLsn(commit[2]!);
      if (micros > watermarkMicros && xids.some((xid) => unheld.has(xid))) {
        next = lsn;
        break;
      }
      if (!last || lsn >= last.lsn) last = { lsn, time: new Date(Number(micros / 1000n)).toISOString() };
    }
    // pg_waldump ends with an error at the end of the WAL it was given; at the barrier it is simply stopped.
    child.kill('SIGKILL');
    await exited;
    if (next !== undefined) break;
  }
  return { stop: replayStop(parseLsn(plan.base.endLsn), last, next), atObject: next !== undefined };
}
