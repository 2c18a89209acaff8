import { unrepairedObjectDamage } from '../../objects/integrity.ts';
import { type DoctorCheck, fail, ok } from './types.ts';

/** Objects whose stored copy a read, the scrub, a backup or an upload found damaged, not repaired yet. */
export function objectChecks(): DoctorCheck[] {
  return [
    {
      id: 'objects.integrity',
      run: async (ctx) => {
        const damaged = await unrepairedObjectDamage(await ctx.database());
        if (damaged.length === 0)
          return ok('no damaged object copies found (reads, the scrub and backups verify every SHA-256)');
        const shown = damaged
          .slice(0, 5)
          .map((d) => `${d.key} (found by ${d.foundBy})`)
          .join(', ');
        const more = damaged.length > 5 ? ` and ${damaged.length - 5} more` : '';
        return fail(
          `${damaged.length} object(s) are damaged in the object store and not repaired: ${shown}${more}`,
          'upload the true bytes again, or `trendgen restore latest --only objects` from a backup that holds them',
        );
      },
    },
  ];
}
