import { formatDuration } from '../../lib/format.ts';
import { ScheduleError, scheduleInterval } from '../../lib/schedule-interval.ts';
import { type DrillRun, latestDrill } from '../../vault/catalog.ts';
import { databaseWith } from './backups.ts';
import { type DoctorCheck, type DoctorContext, fail, ok, warn } from './types.ts';

function describe(ctx: DoctorContext, row: DrillRun): string {
  const parts = [`${formatDuration(ctx.now.getTime() - row.finishedAt.getTime())} ago`];
  if (row.snapshotId)
    parts.push(`snapshot ${row.snapshotId.slice(0, 8)}${row.target ? ` from ${row.target}` : ''}`);
  if (row.recoverySeconds !== null && row.status === 'passed') {
    parts.push(`recovered in ${formatDuration(row.recoverySeconds * 1000)}`);
  }
  return parts.join(', ');
}

export function drillChecks(): DoctorCheck[] {
  return [
    {
      id: 'drill.last',
      run: async (ctx) => {
        let interval: number | undefined;
        try {
          interval = scheduleInterval(ctx.config.drill.schedule, ctx.now, 'DRILL_SCHEDULE');
        } catch (error) {
          if (error instanceof ScheduleError) return fail(error.message, 'correct DRILL_SCHEDULE');
          throw error;
        }
        const none = warn(
          'no restore drill has run yet: nothing proves that the backups restore',
          'run: trendgen drill',
        );
        // drill_runs comes with migration 0004; a database not migrated that far has simply seen no drill.
        const sql = await databaseWith(ctx, 'drill_runs');
        if (!sql) return none;
        const [latest, passed] = await Promise.all([latestDrill(sql), latestDrill(sql, ['passed'])]);
        if (!latest) return none;
        if (latest.status === 'failed') {
          return fail(
            `the latest restore drill (${describe(ctx, latest)}) failed: ${latest.reason ?? 'no reason recorded'}`,
            'a backup that does not restore is no backup: run trendgen drill, and trendgen check --read-data',
          );
        }
        const summary = `the last restore drill passed (${describe(ctx, passed!)})`;
        if (interval === undefined) {
          return warn(
            `${summary}; DRILL_SCHEDULE is off, so drills run only when someone starts them`,
            'set DRILL_SCHEDULE (default weekly: 0 4 * * 0)',
          );
        }
        // A stale drill is a WARN, not a FAIL: the backups may well be fine, only the proof is old.
        if (ctx.now.getTime() - passed!.finishedAt.getTime() > 2 * interval) {
          return warn(
            `${summary}, though DRILL_SCHEDULE runs one every ${formatDuration(interval)}`,
            'see the scheduler, or run: trendgen drill',
          );
        }
        return ok(summary);
      },
    },
  ];
}
