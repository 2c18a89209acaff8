import { apiPath, request } from '../api.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';
import { ErrorLine, StatusBadge, StatusCard, type StatusItem } from '../components/status.tsx';
import { TimelineChart } from '../components/timeline-chart.tsx';
import { formatBytes, formatTime, shortId } from '../format.ts';
import { useLoad } from '../hooks.ts';
import {
  continuousItems,
  doctorItems,
  drillItems,
  ledgerItems,
  scheduleItems,
  targetItems,
} from '../status-sources.ts';
import type { BackupsView, DoctorReport, Timeline } from '../types.ts';

interface CardSource<T> {
  title: string;
  empty: string;
  items: (data: T) => StatusItem[];
}

const BACKUP_CARDS: Array<CardSource<BackupsView>> = [
  { title: 'Continuous protection', empty: 'Nothing streams yet.', items: continuousItems },
  { title: 'Backup targets', empty: 'No target has a backup yet.', items: targetItems },
  { title: 'Restore drills', empty: 'No drill yet.', items: drillItems },
  { title: 'Deletion ledgers', empty: 'No user deletion is owed to any target.', items: ledgerItems },
  { title: 'Schedule', empty: 'No schedule.', items: scheduleItems },
];

export function ProtectionView() {
  const backups = useLoad(() => request<BackupsView>(apiPath`/backups`));
  const doctor = useLoad(() => request<DoctorReport>(apiPath`/doctor`));
  const timeline = useLoad(() => request<Timeline>(`${apiPath`/backups/timeline`}?days=7`));
  const refresh = () => Promise.all([backups.reload(), doctor.reload(), timeline.reload()]);
  const loading = backups.loading || doctor.loading || timeline.loading;

  return (
    <>
      <div class="page-head">
        <h2>Protection</h2>
        <button type="button" onClick={() => void refresh()} disabled={loading}>
          {loading ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      <div class="cards">
        <StatusCard
          title="Doctor"
          items={doctor.data ? doctorItems(doctor.data) : []}
          error={doctor.error}
          empty={doctor.loading ? 'Loading…' : 'The doctor has not run yet.'}
        />
        {BACKUP_CARDS.map((card) => (
          <StatusCard
            key={card.title}
            title={card.title}
            items={backups.data ? card.items(backups.data) : []}
            error={backups.error}
            empty={backups.loading ? 'Loading…' : card.empty}
          />
        ))}
      </div>
      {doctor.data?.takenAt && <p class="muted">Doctor report taken {formatTime(doctor.data.takenAt)}.</p>}
      <TimelineSection timeline={timeline.data} error={timeline.error} />
    </>
  );
}

function TimelineSection({ timeline, error }: { timeline: Timeline | undefined; error: string | null }) {
  const snapshots = timeline ? [...timeline.snapshots].reverse() : [];
  return (
    <section class="card timeline" aria-labelledby="timeline-heading" data-testid="timeline">
      <h3 id="timeline-heading">Last 7 days: snapshots and recovery-point lag</h3>
      <ErrorLine message={error} />
      {timeline && (
        <>
          <p class="muted">
            {formatTime(timeline.from)} to {formatTime(timeline.to)}. Dots are snapshots (green: succeeded,
            red: failed), lines the lag of each continuously protected source and target.
          </p>
          <TimelineChart timeline={timeline} />
          <ScrollRegion label="Snapshots of the last 7 days">
            <table>
              <caption>Snapshots of the last 7 days, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Taken</th>
                  <th scope="col">Snapshot</th>
                  <th scope="col">Status</th>
                  <th scope="col">Added</th>
                </tr>
              </thead>
              <tbody>
                {snapshots.length === 0 && (
                  <tr>
                    <td colSpan={4}>No snapshot in the last 7 days.</td>
                  </tr>
                )}
                {snapshots.map((s) => (
                  <tr key={`${s.snapshotId}-${s.at}`}>
                    <td>{formatTime(s.at)}</td>
                    <td>
                      <code>{shortId(s.snapshotId)}</code>
                    </td>
                    <td>
                      <StatusBadge status={s.status === 'succeeded' ? 'OK' : 'FAIL'} label={s.status} />
                    </td>
                    <td>{formatBytes(s.bytesAdded)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollRegion>
        </>
      )}
    </section>
  );
}
