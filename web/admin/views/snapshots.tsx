import { useState } from 'preact/hooks';
import { ApiError, apiPath, messageOf, request } from '../api.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';
import { type BadgeStatus, ErrorLine, StatusBadge } from '../components/status.tsx';
import { Time } from '../components/time.tsx';
import { formatBytes, shortId } from '../format.ts';
import { useLoad, usePoll } from '../hooks.ts';
import type { BackupRun, BackupsView } from '../types.ts';
import { DrillsSection } from './drills.tsx';

const POLL_MS = 2000;

const RUN_BADGE: Record<BackupRun['status'], BadgeStatus> = {
  running: 'INFO',
  succeeded: 'OK',
  partial: 'WARN',
  failed: 'FAIL',
  interrupted: 'FAIL',
};

export function SnapshotsView() {
  const backups = useLoad(() => request<BackupsView>(apiPath`/backups`));
  // The newest run id when "Back up now" was pressed: polling goes on until a newer run has finished.
  const [awaitingAfter, setAwaitingAfter] = useState<number | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const runs = backups.data?.backups ?? [];
  const newest = runs[0];
  const awaiting =
    awaitingAfter !== null && (!newest || newest.id <= awaitingAfter || newest.status === 'running');
  const running = runs.some((r) => r.status === 'running');
  usePoll(backups.reload, POLL_MS, awaiting || running);

  const backUpNow = async () => {
    setStartError(null);
    try {
      await request(apiPath`/backups`, { method: 'POST' });
      setAwaitingAfter(newest?.id ?? 0);
      await backups.reload();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) setStartError(messageOf(error));
    }
  };

  return (
    <>
      <div class="page-head">
        <h2>Snapshots</h2>
        <button type="button" class="primary" onClick={() => void backUpNow()} disabled={awaiting}>
          {awaiting ? 'Backing up…' : 'Back up now'}
        </button>
      </div>
      <ErrorLine message={startError} />
      <p class="live" aria-live="polite">
        {awaiting
          ? 'A backup is running; this page follows it every 2 seconds.'
          : awaitingAfter !== null && newest
            ? `The backup ${newest.status === 'succeeded' ? 'succeeded' : `ended: ${newest.status}`} (snapshot ${shortId(newest.snapshotId)}).`
            : ''}
      </p>
      <section class="card" aria-labelledby="runs-heading">
        <h3 id="runs-heading">Backup runs</h3>
        <ErrorLine message={backups.error} />
        <RunsTable runs={runs} loading={backups.loading && !backups.data} />
      </section>
      <DrillsSection />
    </>
  );
}

function RunsTable({ runs, loading }: { runs: BackupRun[]; loading: boolean }) {
  return (
    <ScrollRegion label="Backup runs">
      <table>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Status</th>
            <th scope="col">Snapshot</th>
            <th scope="col">Size added</th>
            <th scope="col">Tags</th>
            <th scope="col">Targets</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {runs.length === 0 && (
            <tr>
              <td colSpan={7}>{loading ? 'Loading…' : 'No backup has run yet.'}</td>
            </tr>
          )}
          {runs.map((run) => (
            <tr key={run.id} data-run-status={run.status}>
              <td>
                <Time iso={run.startedAt} />
              </td>
              <td>
                <StatusBadge status={RUN_BADGE[run.status]} label={run.status} />
              </td>
              <td>
                <code>{shortId(run.snapshotId)}</code>
              </td>
              <td>{formatBytes(run.bytesAdded)}</td>
              <td>{run.tags.join(', ') || '—'}</td>
              <td>
                {run.targets.length === 0
                  ? '—'
                  : run.targets.map((t) => (
                      <StatusBadge
                        key={t.name}
                        status={t.ok ? 'OK' : 'FAIL'}
                        label={`${t.name} ${t.ok ? 'ok' : 'failed'}`}
                      />
                    ))}
              </td>
              <td class="error-cell">{run.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}
