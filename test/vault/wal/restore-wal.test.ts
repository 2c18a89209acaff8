import { describe, expect, it } from 'vitest';
import type { BaseBackupRecord, WalRecord } from '../../../src/vault/repository/index.ts';
import type { PointInTimePlan } from '../../../src/vault/wal/pitr-plan.ts';
import { replayStop, walNeeded } from '../../../src/vault/wal/restore-wal.ts';

const base: BaseBackupRecord = {
  id: 'b1',
  time: '2026-12-01T10:00:10.000Z',
  startedAt: '2026-12-01T10:00:00.000Z',
  timeline: 1,
  startLsn: '0/2000028',
  endLsn: '0/3000100',
  tree: 't',
  size: 1,
  serverVersionNum: 150000,
  systemIdentifier: '1',
};

/** Segment n (2, 3, …) ends at 0/(n+1)000000 and covers until 10:00:(n*10). */
function segment(n: number, coversUntil: string | undefined = `2026-12-01T10:00:${n * 10}.000Z`): WalRecord {
  return {
    kind: 'segment',
    name: `00000001000000000000000${n}`,
    timeline: 1,
    tree: `t${n}`,
    size: 16 << 20,
    endLsn: `0/${n + 1}000000`,
    ...(coversUntil ? { coversUntil } : {}),
    shippedAt: '2026-12-01T10:10:00.000Z',
  };
}

const plan = (wal: WalRecord[], target?: string): PointInTimePlan => ({
  base,
  timeline: 1,
  legs: [{ timeline: 1, from: 0n, until: undefined }],
  wal,
  history: [],
  coversUntil: undefined,
  target: target ? new Date(target) : undefined,
});

describe('walNeeded: the WAL a restore to a moment fetches', () => {
  const chain = [segment(2), segment(3), segment(4), segment(5)];

  it('stops at the first record whose WAL covers the target', () => {
    const needed = walNeeded(plan(chain, '2026-12-01T10:00:35.000Z'));
    expect(needed.wal.map((r) => r.name)).toEqual(chain.slice(0, 3).map((r) => r.name));
    expect(needed.trimmed).toBe(true);
  });

  it('never stops before the base backup is consistent', () => {
    const needed = walNeeded(plan(chain, '2026-12-01T10:00:05.000Z'));
    // Segment 2 covers the target but ends before the base backup's end (0/3000100): segment 3 is needed too.
    expect(needed.wal.map((r) => r.name)).toEqual(chain.slice(0, 2).map((r) => r.name));
  });

  it('keeps everything for the newest moment, a target past the records, or records without times', () => {
    expect(walNeeded(plan(chain)).wal).toHaveLength(4);
    expect(walNeeded(plan(chain, '2026-12-01T11:00:00.000Z'))).toEqual({ wal: chain, trimmed: false });
    const untimed = [segment(2, undefined), segment(3, undefined), segment(4, undefined)];
    expect(walNeeded(plan(untimed, '2026-12-01T10:00:35.000Z')).wal).toHaveLength(3);
  });
});

describe('replayStop: where the replay of a restore to a moment stops', () => {
  const baseEnd = 0x3000000n;
  const last = (lsn: bigint) => ({ lsn, time: '2026-12-01T10:00:20.000Z' });

  it('stops before the first commit after the moment, keeping the last one before it', () => {
    expect(replayStop(baseEnd, last(0x3000200n), 0x3000400n)).toEqual({
      lsn: 0x3000400n,
      inclusive: false,
      time: '2026-12-01T10:00:20.000Z',
    });
  });

  it('stops before that commit too when every earlier one lies inside the base backup', () => {
    // A stop after the last kept commit would be before the consistent point, or past the last record fetched
    // when the base backup ended on a segment's boundary.
    expect(replayStop(baseEnd, last(0x2000200n), 0x3000028n)).toEqual({
      lsn: 0x3000028n,
      inclusive: false,
      time: undefined,
    });
  });

  it('replays all the WAL fetched when no commit after the moment is in it', () => {
    expect(replayStop(baseEnd, last(0x3000200n), undefined)).toBeUndefined();
    expect(replayStop(baseEnd, undefined, undefined)).toBeUndefined();
  });

  it('stops at the base backup end, the earliest stop PostgreSQL accepts, when the next commit lies inside it', () => {
    expect(replayStop(baseEnd, last(0x2000200n), 0x2000400n)).toEqual({
      lsn: baseEnd,
      inclusive: true,
      time: undefined,
    });
  });
});
