import { describe, expect, it } from 'vitest';
import { applyPolicy, parseDuration } from '../../src/vault/forget.ts';
import type { Snapshot } from '../../src/vault/repository/index.ts';

const snap = (time: string, n: number): Snapshot => ({
  id: n.toString(16).padStart(64, '0'),
  time,
  host: 'h',
  tags: [],
  trees: {},
});

/** One snapshot every hour for 40 days, newest first at 2026-03-10T23:00Z. */
const hourly = Array.from({ length: 40 * 24 }, (_, i) =>
  snap(new Date(Date.UTC(2026, 2, 10, 23) - i * 3600_000).toISOString(), i + 1),
);
const kept = (decisions: ReturnType<typeof applyPolicy>) =>
  decisions.filter((d) => d.keep).map((d) => d.snapshot.time);

describe('retention policy', () => {
  it('keep-last keeps the newest n', () => {
    expect(kept(applyPolicy(hourly, { last: 3 }))).toEqual([
      '2026-03-10T23:00:00.000Z',
      '2026-03-10T22:00:00.000Z',
      '2026-03-10T21:00:00.000Z',
    ]);
  });

  it('keep-daily keeps the newest snapshot of each of the last n days', () => {
    const days = kept(applyPolicy(hourly, { daily: 14 }));
    expect(days).toHaveLength(14);
    expect(days[0]).toBe('2026-03-10T23:00:00.000Z');
    expect(days[1]).toBe('2026-03-09T23:00:00.000Z');
    expect(days.at(-1)).toBe('2026-02-25T23:00:00.000Z');
  });

  it('the default policy (24 hourly, 14 daily, 8 weekly, 12 monthly) keeps a union and reasons', () => {
    const decisions = applyPolicy(hourly, { hourly: 24, daily: 14, weekly: 8, monthly: 12 });
    const keep = decisions.filter((d) => d.keep);
    // 24 hours, then 13 more days (the newest day is shared), weekly and monthly buckets reaching further back.
    expect(keep.length).toBeGreaterThan(24 + 13);
    expect(keep[0]!.reasons.sort()).toEqual(['daily', 'hourly', 'monthly', 'weekly']);
    const monthly = keep.filter((d) => d.reasons.includes('monthly')).map((d) => d.snapshot.time);
    expect(monthly).toEqual([
      '2026-03-10T23:00:00.000Z',
      '2026-02-28T23:00:00.000Z',
      '2026-01-31T23:00:00.000Z',
    ]);
    expect(decisions.at(-1)!.keep).toBe(false);
    expect(new Set(keep.map((d) => d.snapshot.id)).size).toBe(keep.length);
  });

  it('keep-within keeps everything younger than the window', () => {
    const now = Date.UTC(2026, 2, 11, 0);
    expect(kept(applyPolicy(hourly, { withinMs: parseDuration('36h') }, now))).toHaveLength(36);
  });

  it('parses durations and refuses nonsense', () => {
    expect(parseDuration('14d')).toBe(14 * 24 * 3600_000);
    expect(parseDuration('2w')).toBe(14 * 24 * 3600_000);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
