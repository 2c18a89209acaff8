import { diffLines } from 'diff';
import { ScrollRegion } from './scroll-region.tsx';

interface Cell {
  number: number;
  text: string;
  kind: 'same' | 'removed' | 'added';
}
type Row = [Cell | null, Cell | null];

const linesOf = (value: string) => value.replace(/\n$/, '').split('\n');

/** The diff as rows of (old line, new line): a removal and the addition after it share rows. */
export function diffRows(before: string, after: string): Row[] {
  const rows: Row[] = [];
  let left = 1;
  let right = 1;
  let removed: Cell[] = [];
  const flushRemoved = (added: Cell[] = []) => {
    for (let i = 0; i < Math.max(removed.length, added.length); i++)
      rows.push([removed[i] ?? null, added[i] ?? null]);
    removed = [];
  };
  for (const change of diffLines(before, after)) {
    const lines = linesOf(change.value);
    if (change.removed) {
      removed.push(...lines.map((text): Cell => ({ number: left++, text, kind: 'removed' })));
    } else if (change.added) {
      flushRemoved(lines.map((text): Cell => ({ number: right++, text, kind: 'added' })));
    } else {
      flushRemoved();
      for (const text of lines) {
        rows.push([
          { number: left++, text, kind: 'same' },
          { number: right++, text, kind: 'same' },
        ]);
      }
    }
  }
  flushRemoved();
  return rows;
}

const MARK = { same: ' ', removed: '−', added: '+' } as const;
const SPOKEN = { same: '', removed: 'removed: ', added: 'added: ' } as const;

function Side({ cell }: { cell: Cell | null }) {
  if (!cell) return <td class="diff-empty" colSpan={2} />;
  return (
    <>
      <td class="diff-number">{cell.number}</td>
      <td class={`diff-text diff-${cell.kind}`}>
        <span class="visually-hidden">{SPOKEN[cell.kind]}</span>
        <span aria-hidden="true" class="diff-mark">
          {MARK[cell.kind]}
        </span>
        {cell.text}
      </td>
    </>
  );
}

export function SideBySideDiff({
  before,
  after,
  beforeLabel,
  afterLabel,
}: {
  before: string;
  after: string;
  beforeLabel: string;
  afterLabel: string;
}) {
  const rows = diffRows(before, after);
  const changed = rows.filter(([a, b]) => a?.kind !== 'same' || b?.kind !== 'same').length;
  return (
    <ScrollRegion label={`Differences between ${beforeLabel} and ${afterLabel}`}>
      <table class="diff" data-testid="prompt-diff">
        <caption>
          {beforeLabel} → {afterLabel}: {changed === 0 ? 'identical' : `${changed} changed line(s)`}
        </caption>
        <colgroup>
          <col class="diff-number-column" />
          <col />
          <col class="diff-number-column" />
          <col />
        </colgroup>
        <thead>
          <tr>
            <th scope="col" colSpan={2}>
              {beforeLabel}
            </th>
            <th scope="col" colSpan={2}>
              {afterLabel}
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([a, b], i) => (
            <tr key={i}>
              <Side cell={a} />
              <Side cell={b} />
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}
