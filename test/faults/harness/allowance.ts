import type { Ledger } from './load.ts';

/** How far behind a kill continuous protection may be (I11, async mode): PostgreSQL 1 s, objects 5 s. */
export const POSTGRES_ALLOWANCE_MS = 1_000;
export const OBJECTS_ALLOWANCE_MS = 5_000;

export interface Allowances {
  postgresMs: number;
  objectsMs: number;
}

export const ASYNC_ALLOWANCES: Allowances = {
  postgresMs: POSTGRES_ALLOWANCE_MS,
  objectsMs: OBJECTS_ALLOWANCE_MS,
};
/** BACKUP_SYNC=on: a commit and an upload are acknowledged only once they are on the backup disk. */
export const SYNC_ALLOWANCES: Allowances = { postgresMs: 0, objectsMs: 0 };

/** What must survive a fault at `faultAt`: writes acknowledged earlier than the allowance before it. */
export function dueBefore(ledger: Ledger, faultAt: number, allowances = ASYNC_ALLOWANCES): Ledger {
  const before = (at: number | undefined, allowance: number) => (at ?? 0) < faultAt - allowance;
  return {
    prompts: ledger.prompts.filter((p) => before(p.at, allowances.postgresMs)),
    objects: ledger.objects.filter((o) => before(o.at, allowances.objectsMs)),
    // A generation's row refers to its photo, an object: the objects' allowance applies.
    generations: ledger.generations.filter((g) => before(g.at, allowances.objectsMs)),
    // A user's deletion is in the local ledger before its answer: every acknowledged one must hold (I3).
    deletions: ledger.deletions,
  };
}
