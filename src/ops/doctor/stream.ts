import type { Config } from '../../config/config.ts';
import { objectStreamStatus } from '../../vault/stream/objects-status.ts';
import { targetNames } from '../../vault/targets.ts';
import { databaseWith } from './backups.ts';
import { type DoctorCheck, fail, ok, warn } from './types.ts';

/** I11: objects reach each target within 5 s of their row; a WARN past that, a FAIL past a minute. */
export const OBJECT_LAG_WARN_SECONDS = 5;
export const OBJECT_LAG_FAIL_SECONDS = 60;

/** One check per configured target: how far the object stream has brought it (continuous protection). */
export function streamChecks(config: Config): DoctorCheck[] {
  return targetNames(config).map((target) => ({
    id: `stream.objects.${target}`,
    run: async (ctx) => {
      const notRunning = warn(
        `objects are not streamed to ${target} yet: only snapshots protect them there`,
        'run the object streamer: trendgen protect (trendgen up runs it), or trendgen object-stream alone',
      );
      // object_stream_queue comes with migration 0007.
      const sql = await databaseWith(ctx, 'object_stream_queue');
      if (!sql) return notRunning;
      const status = (await objectStreamStatus(sql, ctx.config)).find((row) => row.target === target);
      if (!status?.recoverableUntil || status.lagSeconds === undefined) return notRunning;
      const summary = `objects recoverable until ${status.recoverableUntil.toISOString()} (lag ${status.lagSeconds.toFixed(1)} s, ${status.pending} pending)`;
      if (status.error) {
        return fail(
          `the object stream fails on ${target} (${status.error.replace(/\.$/, '')}); ${summary}`,
          'see that the target is reachable and writable; the streamer retries by itself',
        );
      }
      if (status.lagSeconds > OBJECT_LAG_FAIL_SECONDS) {
        return fail(
          `${summary}: more than ${OBJECT_LAG_FAIL_SECONDS} s behind`,
          'see that trendgen protect (or trendgen object-stream) runs',
        );
      }
      if (status.lagSeconds > OBJECT_LAG_WARN_SECONDS) {
        return warn(
          `${summary}: more than ${OBJECT_LAG_WARN_SECONDS} s behind`,
          'see that trendgen protect (or trendgen object-stream) runs',
        );
      }
      return ok(summary);
    },
  }));
}
