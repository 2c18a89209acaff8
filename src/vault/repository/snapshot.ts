import { isId, isObject } from './format.ts';
import { isSafeName } from './tree.ts';

/**
 * What a snapshot records. The repository needs `trees` (to check and prune what they reference); the
 * rest is for people and for the backup layer, which may add any JSON fields (facts, statistics).
 */
export interface SnapshotRecord {
  /** ISO 8601. */
  time: string;
  host: string;
  tags: string[];
  parent?: string;
  /** The root tree of each source, by source name (e.g. postgres, redis, prompts, objects). */
  trees: Record<string, string>;
  [field: string]: unknown;
}

export interface Snapshot extends SnapshotRecord {
  id: string;
}

/** Throws TypeError saying what is wrong; returns the record unchanged otherwise. */
export function checkSnapshotRecord(value: unknown): SnapshotRecord {
  if (!isObject(value)) throw new TypeError('not a JSON object');
  const { time, host, tags, parent, trees } = value;
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time))) throw new TypeError('no valid time');
  if (typeof host !== 'string') throw new TypeError('no host');
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string')) throw new TypeError('bad tags');
  if (parent !== undefined && !isId(parent)) throw new TypeError('bad parent id');
  if (!isObject(trees)) throw new TypeError('no trees');
  for (const [source, tree] of Object.entries(trees)) {
    if (!isSafeName(source)) throw new TypeError(`bad source name ${JSON.stringify(source)}`);
    if (!isId(tree)) throw new TypeError(`bad tree id for source ${source}`);
  }
  return value as SnapshotRecord;
}
