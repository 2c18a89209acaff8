import { apiPath, request } from '../api.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';
import { ErrorLine, StatusBadge, StatusCard, type StatusItem } from '../components/status.tsx';
import { Time } from '../components/time.tsx';
import { TimelineChart } from '../components/timeline-chart.tsx';
import { formatBytes, formatSeconds, formatTime, shortId } from '../format.ts';
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
          wide
          foldOk
          title="Doctor"
          items={doctor.data ? doctorItems(doctor.data) : []}
          error={doctor.error}
          empty={doctor.loading ? 'Loading…' : 'The scheduler has not taken a doctor report yet.'}
          note={doctor.data?.takenAt ? `The scheduler's report of ${formatTime(doctor.data.takenAt)}.` : null}
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
          <LagTable timeline={timeline} />
          <ScrollRegion label="Backups of the last 7 days">
            <table>
              <caption>Backups of the last 7 days, newest first</caption>
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
                    <td colSpan={4}>No backup in the last 7 days.</td>
                  </tr>
                )}
                {snapshots.map((s) => (
                  <tr key={`${s.snapshotId}-${s.at}`}>
                    <td>
                      <Time iso={s.at} />
                    </td>
                    <td>
                      <code>{shortId(s.snapshotId)}</code>
                    </td>
                    <td>
                      <StatusBadge
                        status={s.status === 'succeeded' ? 'OK' : s.status === 'partial' ? 'WARN' : 'FAIL'}
                        label={s.status}
                      />
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

/** The chart's lag lines in words: the newest and the worst sample of each source and target. */
function LagTable({ timeline }: { timeline: Timeline }) {
  const lines = new Map<string, { latest: number | null; latestAt: string; worst: number | null }>();
  for (const sample of timeline.lag) {
    const key = `${sample.source} → ${sample.target}`;
    const line = lines.get(key) ?? { latest: null, latestAt: sample.at, worst: null };
    // Oldest first: the last sample seen is the newest.
    line.latest = sample.lagSeconds;
    line.latestAt = sample.at;
    if (sample.lagSeconds !== null) line.worst = Math.max(line.worst ?? 0, sample.lagSeconds);
    lines.set(key, line);
  }
  if (lines.size === 0) return <p class="muted">No recovery-point lag sampled in these days.</p>;
  return (
    <ScrollRegion label="Recovery-point lag">
      <table>
        <caption>Recovery-point lag per source and target</caption>
        <thead>
          <tr>
            <th scope="col">Source → target</th>
            <th scope="col">Newest sample</th>
            <th scope="col">Lag then</th>
            <th scope="col">Worst in these days</th>
          </tr>
        </thead>
        <tbody>
          {[...lines].map(([key, line]) => (
            <tr key={key}>
              <td>{key}</td>
              <td>
                <Time iso={line.latestAt} />
              </td>
              <td>{formatSeconds(line.latest)}</td>
              <td>{formatSeconds(line.worst)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}
