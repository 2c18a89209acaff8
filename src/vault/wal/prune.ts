import {
  deleteBaseRecord,
  deleteWalRecord,
  listBaseBackups,
  listWalKeys,
  type Repository,
} from '../repository/index.ts';
import { parseLsn, parseSegmentName, segmentOf } from './lsn.ts';

/**
 * Retention for point-in-time restore (I9 keeps it to records; blobs go at the next `forget --prune`): every
 * base backup inside the window is kept, plus the newest one before it, which the window's start replays
 * from; WAL older than the oldest kept base backup's start is removed. Nothing is removed while a base
 * backup record does not read, since the one it hides might be the one the window needs.
 */
export async function pruneContinuous(
  repo: Repository,
  windowSeconds: number,
  now = Date.now(),
): Promise<{ baseBackups: number; walFiles: number }> {
  const { backups, unreadable } = await listBaseBackups(repo);
  if (unreadable.length > 0 || backups.length === 0) return { baseBackups: 0, walFiles: 0 };
  const windowStart = now - windowSeconds * 1000;
  const before = backups.filter((b) => Date.parse(b.time) < windowStart);
  const drop = before.slice(0, -1);
  const keepFrom = (before.at(-1) ?? backups[0])!;
  for (const record of drop) await deleteBaseRecord(repo, record);
  const firstSegno = segmentOf(parseLsn(keepFrom.startLsn));
  let walFiles = 0;
  for (const key of await listWalKeys(repo)) {
    if (key.kind === 'history') continue;
    const { timeline, segno } = parseSegmentName(key.name);
    if (timeline <= keepFrom.timeline && segno < firstSegno) {
      await deleteWalRecord(repo, key.kind, key.name);
      walFiles++;
    }
  }
  return { baseBackups: drop.length, walFiles };
}
