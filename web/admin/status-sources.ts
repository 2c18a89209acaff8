import type { StatusItem } from './components/status.tsx';
import { formatSeconds, formatTime, shortId } from './format.ts';
import type { BackupsView, DoctorReport } from './types.ts';

/**
 * Each source of status the Protection page shows, as a function from the API's data to StatusItems: adding
 * a source is one more function here and one more entry in the page's list.
 */

/** Behind by more than this, a continuously protected source is worth a look. */
const LAG_WARN_SECONDS = 60;

const SEVERITY = { FAIL: 0, WARN: 1, OK: 2 } as const;

/** The doctor's checks, failures first: what needs doing is at the top. */
export function doctorItems(report: DoctorReport): StatusItem[] {
  const ordered = report.checks
    .map((check, index) => ({ check, index }))
    .sort((a, b) => SEVERITY[a.check.status] - SEVERITY[b.check.status] || a.index - b.index)
    .map(({ check }) => check);
  return ordered.map((check) => ({
    key: check.id,
    status: check.status,
    label: check.id,
    detail: check.message,
    ...(check.hint ? { hint: check.hint } : {}),
  }));
}

export function continuousItems(view: BackupsView): StatusItem[] {
  const continuous = view.continuous;
  if (!continuous.continuous) {
    return [
      {
        key: 'off',
        status: 'WARN',
        label: 'Continuous protection is off',
        detail: 'Only snapshots protect the data: set BACKUP_CONTINUOUS=on to stream every write.',
      },
    ];
  }
  const items: StatusItem[] = [];
  if (continuous.stall)
    items.push({ key: 'stall', status: 'FAIL', label: 'Stalled', detail: continuous.stall });
  for (const s of continuous.sources) {
    const status = s.error
      ? 'FAIL'
      : s.lagSeconds === null || s.lagSeconds > LAG_WARN_SECONDS
        ? 'WARN'
        : 'OK';
    items.push({
      key: `${s.source}/${s.target}`,
      status,
      label: `${s.source} → ${s.target}`,
      detail: `Recoverable until ${formatTime(s.recoverableUntil)}, ${formatSeconds(s.lagSeconds)} behind (${s.state})`,
      ...(s.error ? { hint: s.error } : {}),
    });
  }
  return items;
}

export function targetItems(view: BackupsView): StatusItem[] {
  const names = new Set([
    ...Object.keys(view.targets),
    ...view.backups.flatMap((r) => r.targets.map((t) => t.name)),
  ]);
  return [...names].sort().map((name) => {
    const lastRun = view.backups.find(
      (r) => r.status !== 'running' && r.targets.some((t) => t.name === name),
    );
    const outcome = lastRun?.targets.find((t) => t.name === name);
    const lastSuccess = view.targets[name]?.lastSuccessAt;
    return {
      key: name,
      status: !lastSuccess ? 'WARN' : outcome && !outcome.ok ? 'FAIL' : 'OK',
      label: name,
      detail: lastSuccess
        ? `Last backup reached it ${formatTime(lastSuccess)}`
        : 'No backup has reached it yet.',
      ...(outcome && !outcome.ok
        ? { hint: outcome.error ?? `The last backup (run ${lastRun?.id}) failed here.` }
        : {}),
    };
  });
}

export function ledgerItems(view: BackupsView): StatusItem[] {
  return view.deletionLedgers.map((ledger) => ({
    key: ledger.target,
    status: ledger.lastError ? 'FAIL' : ledger.pending > 0 ? 'WARN' : 'OK',
    label: ledger.target,
    detail:
      ledger.pending > 0
        ? `${ledger.pending} user deletion(s) not yet in this target's ledger, ${formatSeconds(ledger.lagSeconds)} behind`
        : 'Every user deletion is in this target’s ledger.',
    ...(ledger.lastError ? { hint: ledger.lastError } : {}),
  }));
}

export function drillItems(view: BackupsView): StatusItem[] {
  const drill = view.lastDrill;
  if (!drill) {
    return [
      {
        key: 'none',
        status: 'WARN',
        label: 'No restore drill yet',
        detail: 'Run one from Snapshots to prove the backups restore.',
      },
    ];
  }
  return [
    {
      key: 'last',
      status: drill.status === 'passed' ? 'OK' : 'FAIL',
      label: drill.status === 'passed' ? 'Last drill passed' : 'Last drill failed',
      detail: `Snapshot ${shortId(drill.snapshotId)} from ${drill.target ?? '—'}, restored in ${formatSeconds(drill.recoverySeconds)}, ${formatTime(drill.finishedAt)}`,
      ...(drill.reason ? { hint: drill.reason } : {}),
    },
  ];
}

export function scheduleItems(view: BackupsView): StatusItem[] {
  const entry = (key: string, what: string, schedule: string, next: string | null): StatusItem => ({
    key,
    status: schedule === 'off' ? 'WARN' : 'OK',
    label: `${what}: ${schedule}`,
    detail: schedule === 'off' ? `Scheduled ${key}s are off.` : `Next at ${formatTime(next)}`,
  });
  return [
    entry('backup', 'Backups', view.schedule.backup, view.schedule.nextBackupAt),
    entry('drill', 'Drills', view.schedule.drill, view.schedule.nextDrillAt),
  ];
}
