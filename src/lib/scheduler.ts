import { Cron } from 'croner';
import { sleepUnlessAborted } from './process.ts';

export interface Clock {
  now(): Date;
  /** Resolves at `until`, or early when `signal` aborts. */
  sleepUntil(until: Date, signal: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => new Date(),
  // Long waits are cut into slices so that a clock change (suspend, NTP step) is noticed.
  sleepUntil: (until, signal) =>
    sleepUnlessAborted(Math.min(60_000, Math.max(0, until.getTime() - Date.now())), signal),
};

export interface ScheduledJob {
  name: string;
  /** Cron syntax (5 or 6 fields). */
  schedule: string;
  run(slot: Date): Promise<void>;
}

export interface SchedulerEvents {
  onStart?(job: string, slot: Date): void;
  onError?(job: string, error: unknown): void;
  /** The previous run was still going when its next slot came: that slot is skipped, never run twice at once. */
  onOverrun?(job: string, slot: Date): void;
}

export function validateSchedule(name: string, schedule: string): Cron {
  try {
    return new Cron(schedule, { paused: true, timezone: 'UTC' });
  } catch (error) {
    throw new Error(`${name} "${schedule}" is not a cron schedule: ${(error as Error).message}`);
  }
}

/**
 * Runs jobs at their cron slots until `signal` aborts. A job never overlaps itself; different jobs may run
 * side by side. Time comes from `clock`, so tests can run ten minutes of schedule in seconds.
 */
export async function runSchedule(
  jobs: ScheduledJob[],
  clock: Clock,
  signal: AbortSignal,
  events: SchedulerEvents = {},
) {
  const crons = new Map(jobs.map((job) => [job.name, validateSchedule(job.name, job.schedule)]));
  const next = new Map<string, Date>();
  const running = new Map<string, Promise<void>>();
  for (const job of jobs) next.set(job.name, crons.get(job.name)!.nextRun(clock.now())!);
  while (!signal.aborted) {
    const [job] = [...jobs].sort((a, b) => next.get(a.name)!.getTime() - next.get(b.name)!.getTime());
    if (!job) return;
    const slot = next.get(job.name)!;
    if (clock.now() < slot) await clock.sleepUntil(slot, signal);
    if (signal.aborted) break;
    if (clock.now() < slot) continue;
    next.set(
      job.name,
      crons.get(job.name)!.nextRun(new Date(Math.max(slot.getTime(), clock.now().getTime())))!,
    );
    if (running.has(job.name)) {
      events.onOverrun?.(job.name, slot);
      continue;
    }
    events.onStart?.(job.name, slot);
    const run = job
      .run(slot)
      .catch((error) => events.onError?.(job.name, error))
      .finally(() => running.delete(job.name));
    running.set(job.name, run);
  }
  await Promise.all(running.values());
}
