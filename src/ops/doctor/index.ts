import type { Config } from '../../config/config.ts';
import { adminChecks } from './admin.ts';
import { backupChecks } from './backups.ts';
import { createContext, seconds, TimeoutError, Unreachable, withTimeout } from './context.ts';
import { continuousChecks } from './continuous.ts';
import { drillChecks } from './drill.ts';
import { objectChecks } from './objects.ts';
import { postgresChecks } from './postgres.ts';
import { promptChecks } from './prompts.ts';
import { redisChecks } from './redis.ts';
import { storageChecks } from './storage.ts';
import { streamChecks } from './stream.ts';
import {
  type CheckResult,
  type CheckStatus,
  type DoctorCheck,
  type DoctorContext,
  type DoctorReport,
  errorMessage,
  NotChecked,
} from './types.ts';

export { scheduleInterval } from '../../lib/schedule-interval.ts';
export type { CheckResult, CheckStatus, DoctorCheck, DoctorContext, DoctorReport };

export interface DoctorOptions {
  /** Per check; a dependency that hangs costs this much once, since all checks run together. Default 5 s. */
  timeoutMs?: number;
  /** The clock that backup and drill ages are measured against; tests may fix it. */
  now?: Date;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

/** Every check, in the order they are reported: services, backups, disks, files. */
export function doctorChecks(config: Config): DoctorCheck[] {
  return [
    ...postgresChecks(),
    ...redisChecks(),
    ...backupChecks(config),
    ...continuousChecks(),
    ...streamChecks(config),
    ...drillChecks(),
    ...storageChecks(),
    ...objectChecks(),
    ...promptChecks(),
    ...adminChecks(),
  ];
}

async function runCheck(check: DoctorCheck, ctx: DoctorContext): Promise<CheckResult> {
  try {
    // Each check is raced against its own timer, so one hanging dependency cannot hang the report.
    const outcome = await withTimeout(
      Promise.resolve().then(() => check.run(ctx)),
      ctx.timeoutMs,
      'the check',
    );
    return { id: check.id, ...outcome };
  } catch (error) {
    if (error instanceof Unreachable) {
      const name = error.service === 'postgres' ? 'PostgreSQL' : 'Redis';
      return {
        id: check.id,
        status: 'WARN',
        message: `not checked: ${name} is unreachable (see ${error.service}.reachable)`,
      };
    }
    if (error instanceof NotChecked) {
      return { id: check.id, status: 'WARN', message: `not checked: ${error.message}` };
    }
    if (error instanceof TimeoutError) {
      return {
        id: check.id,
        status: 'FAIL',
        message: `no answer within ${seconds(ctx.timeoutMs)}`,
        hint: 'whatever this check reads (server, disk, bucket) hangs',
      };
    }
    // A check that throws fails alone; the others are reported all the same.
    return { id: check.id, status: 'FAIL', message: errorMessage(error) };
  }
}

/**
 * Runs every safety check concurrently and reports each as OK, WARN or FAIL (I10: failures are loud).
 * Never starts or changes a service; only the object-store check writes (a probe it deletes again).
 * Reusable by `/readyz` and the metrics exporter.
 */
export async function runDoctor(config: Config, options: DoctorOptions = {}): Promise<DoctorReport> {
  const ctx = createContext(config, options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS, options.now ?? new Date());
  try {
    const checks = await Promise.all(doctorChecks(config).map((check) => runCheck(check, ctx)));
    return { ok: checks.every((check) => check.status !== 'FAIL'), checks };
  } finally {
    await ctx.close();
  }
}

export function countByStatus(report: DoctorReport): Record<CheckStatus, number> {
  const counts: Record<CheckStatus, number> = { OK: 0, WARN: 0, FAIL: 0 };
  for (const check of report.checks) counts[check.status]++;
  return counts;
}

/** One aligned line per check, then a summary line. */
export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((check) => check.id.length));
  const lines = report.checks.map((check) => {
    const hint = check.hint && check.status !== 'OK' ? ` -> ${check.hint}` : '';
    return `${check.status.padEnd(4)} ${check.id.padEnd(width)}  ${check.message}${hint}`;
  });
  const counts = countByStatus(report);
  lines.push(
    `${report.checks.length} checks: ${counts.OK} OK, ${counts.WARN} WARN, ${counts.FAIL} FAIL${report.ok ? '' : ' (exit status 1)'}`,
  );
  return `${lines.join('\n')}\n`;
}
