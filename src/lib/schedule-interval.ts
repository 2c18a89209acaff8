import { Cron } from 'croner';

export class ScheduleError extends Error {
  override name = 'ScheduleError';
}

/**
 * The time between runs of a cron schedule around `now`, or undefined for `off`: the larger of the
 * last gap and the next one, so a weekday-only schedule is not called stale over a weekend. UTC, as
 * the scheduler reads the schedules. A paused Cron without a function only answers questions.
 */
export function scheduleInterval(expression: string, now: Date, variable: string): number | undefined {
  if (expression === 'off') return undefined;
  let cron: Cron;
  try {
    cron = new Cron(expression, { paused: true, timezone: 'UTC' });
  } catch (error) {
    throw new ScheduleError(
      `${variable} ${JSON.stringify(expression)} is not a valid cron expression: ${(error as Error).message}`,
    );
  }
  const [last, before] = cron.previousRuns(2, now);
  const next = cron.nextRun(now);
  const gaps = [
    last && before ? last.getTime() - before.getTime() : 0,
    last && next ? next.getTime() - last.getTime() : 0,
  ];
  const interval = Math.max(...gaps);
  if (!(interval > 0)) throw new ScheduleError(`${variable} ${JSON.stringify(expression)} never repeats`);
  return interval;
}
