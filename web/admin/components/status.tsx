import type { ComponentChildren } from 'preact';
import type { CheckStatus } from '../types.ts';

export type BadgeStatus = CheckStatus | 'INFO';

const SYMBOL: Record<BadgeStatus, string> = { OK: '✓', WARN: '!', FAIL: '✕', INFO: '…' };

/** The status as a word with a symbol, coloured: never colour alone. */
export function StatusBadge({ status, label }: { status: BadgeStatus; label?: string }) {
  return (
    <span class={`badge badge-${status.toLowerCase()}`}>
      <span aria-hidden="true">{SYMBOL[status]}</span> {label ?? status}
    </span>
  );
}

export function ErrorLine({ message }: { message: string | null | undefined }) {
  if (!message) return null;
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

export interface StatusItem {
  key: string;
  status: CheckStatus;
  label: string;
  detail?: ComponentChildren;
  hint?: string;
}

/** The worst of the items: what the card's heading says. */
export function worst(items: StatusItem[]): CheckStatus {
  if (items.some((i) => i.status === 'FAIL')) return 'FAIL';
  if (items.some((i) => i.status === 'WARN')) return 'WARN';
  return 'OK';
}

/**
 * One source of status (the doctor, continuous protection, a target's ledger...) as a card of items. A new
 * source is a function from its data to StatusItems, not a new component.
 */
export function StatusCard({
  title,
  items,
  empty,
  error,
  wide,
  note,
  foldOk,
}: {
  title: string;
  items: StatusItem[];
  empty?: string;
  error?: string | null;
  /** Across the whole row, its items in columns: for sources with many items, like the doctor. */
  wide?: boolean;
  /** A line under the items, e.g. when the report was taken. */
  note?: string | null;
  /** Items that are OK behind a disclosure, so that what needs doing is what one reads. */
  foldOk?: boolean;
}) {
  const headingId = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class={wide ? 'card card-wide' : 'card'} aria-labelledby={headingId}>
      <h3 id={headingId}>
        {title} {items.length > 0 && !error && <StatusBadge status={worst(items)} />}
      </h3>
      <ErrorLine message={error} />
      {items.length === 0 && !error && <p class="muted">{empty ?? 'Nothing to report.'}</p>}
      {foldOk ? (
        <>
          <StatusList items={items.filter((i) => i.status !== 'OK')} />
          {items.some((i) => i.status === 'OK') && (
            <details class="folded">
              <summary>{items.filter((i) => i.status === 'OK').length} more OK</summary>
              <StatusList items={items.filter((i) => i.status === 'OK')} />
            </details>
          )}
        </>
      ) : (
        <StatusList items={items} />
      )}
      {note && <p class="muted card-note">{note}</p>}
    </section>
  );
}

/** Check names like postgres.synchronous_commit wrap at their dots and underscores, not inside a word. */
function breakable(label: string) {
  return label.split(/(?<=[._/])/).map((part, i) => (i === 0 ? part : [<wbr key={i} />, part]));
}

function StatusList({ items }: { items: StatusItem[] }) {
  if (items.length === 0) return null;
  return (
    <ul class="status-list">
      {items.map((item) => (
        <li key={item.key} class={`status-item status-${item.status.toLowerCase()}`}>
          <StatusBadge status={item.status} />
          <div>
            <strong>{breakable(item.label)}</strong>
            {item.detail !== undefined && <div>{item.detail}</div>}
            {item.hint && <div class="muted">{item.hint}</div>}
          </div>
        </li>
      ))}
    </ul>
  );
}
