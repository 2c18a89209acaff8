import { whoProtects } from '../../vault/protected-by.ts';
import { protectionStatus } from '../../vault/wal/report.ts';
import { databaseWith } from './backups.ts';
import { type DoctorCheck, fail, ok, warn } from './types.ts';

/** A recovery point older than this is worth a warning; past the second, the promise of I11 is broken. */
export const LAG_WARN_SECONDS = 5;
export const LAG_FAIL_SECONDS = 60;

export function continuousChecks(): DoctorCheck[] {
  return [
    {
      id: 'backup.continuous',
      run: async (ctx) => {
        const pitr = ctx.config.backup.databasePitr;
        if (pitr !== 'trendgen') {
          const [postgres] = whoProtects(ctx.config, []);
          return ok(
            `PostgreSQL is protected by ${postgres!.by}: ${postgres!.how}; trendgen protects the objects, prompts and Redis (BACKUP_DATABASE_PITR=${pitr})`,
          );
        }
        if (!ctx.config.backup.continuous)
          return warn(
            'continuous protection is off: the recovery point is the last snapshot',
            'set BACKUP_CONTINUOUS=on and run trendgen protect (trendgen up runs it)',
          );
        const sql = await databaseWith(ctx, 'wal_stream_status');
        if (!sql)
          return warn(
            'continuous protection has not started yet',
            'run: trendgen migrate, then trendgen protect',
          );
        const status = await protectionStatus(sql, ctx.config);
        // Objects have their own checks (stream.objects.*): this one is about PostgreSQL's WAL.
        status.sources = status.sources.filter((s) => s.source === 'postgres');
        if (status.stall) return fail(status.stall);
        if (status.sources.length === 0)
          return warn(
            'trendgen protect has not reported yet: nothing streams the database into the backups',
            'run trendgen protect (trendgen up runs it)',
          );
        if (status.sources.every((s) => s.state === 'refused'))
          return warn(
            status.sources[0]!.error ?? 'the server refuses replication',
            "rely on the provider's point-in-time recovery",
          );
        const worst = status.sources.reduce((a, b) =>
          (b.lagSeconds ?? Infinity) > (a.lagSeconds ?? Infinity) ? b : a,
        );
        const lag = worst.lagSeconds ?? Infinity;
        const described = status.sources
          .map((s) => `${s.target} ${s.lagSeconds === null ? 'never' : `${s.lagSeconds} s`} behind`)
          .join(', ');
        if (lag > LAG_FAIL_SECONDS)
          return fail(
            `PostgreSQL's recovery point is ${described}${worst.error ? `: ${worst.error}` : ''}`,
            'see trendgen status; is trendgen protect running and the target reachable?',
          );
        if (lag > LAG_WARN_SECONDS || worst.error)
          return warn(
            `PostgreSQL's recovery point is ${described}${worst.error ? `: ${worst.error}` : ''}`,
            'see trendgen status',
          );
        return ok(`PostgreSQL's recovery point is ${described} (${status.mode})`);
      },
    },
  ];
}
