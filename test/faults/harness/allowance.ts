import type { Ledger } from './load.ts';

/** How far behind a kill continuous protection may be (I11, async mode): PostgreSQL 1 s, objects 5 s. */
export const POSTGRES_ALLOWANCE_MS = 1_000;
export const OBJECTS_ALLOWANCE_MS = 5_000;

/** What must survive a fault at `faultAt`: writes acknowledged earlier than the allowance before it. */
export function dueBefore(ledger: Ledger, faultAt: number): Ledger {
  const before = (at: number | undefined, allowance: number) => (at ?? 0) < faultAt - allowance;
  return {
    prompts: ledger.prompts.filter((p) => before(p.at, POSTGRES_ALLOWANCE_MS)),
    objects: ledger.objects.filter((o) => before(o.at, OBJECTS_ALLOWANCE_MS)),
    // A generation's row refers to its photo, an object: the objects' allowance applies.
    generations: ledger.generations.filter((g) => before(g.at, OBJECTS_ALLOWANCE_MS)),
    // A user's deletion is in the local ledger before its answer: every acknowledged one must hold (I3).
    deletions: ledger.deletions,
  };
}
