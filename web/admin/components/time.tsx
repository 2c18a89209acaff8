import { formatTime } from '../format.ts';

/** A moment in a table cell: machine-readable, and never broken over lines on a narrow screen. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span>—</span>;
  return <time dateTime={iso}>{formatTime(iso)}</time>;
}
