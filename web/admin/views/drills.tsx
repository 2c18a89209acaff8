import { useState } from 'preact/hooks';
import { ApiError, apiPath, messageOf, request } from '../api.ts';
import { ErrorLine, StatusBadge } from '../components/status.tsx';
import { formatSeconds, formatTime, shortId } from '../format.ts';
import { useLoad, usePoll } from '../hooks.ts';
import type { Drill } from '../types.ts';

const POLL_MS = 2000;

export function DrillsSection() {
  const drills = useLoad(() => request<{ drills: Drill[] }>(`${apiPath`/drills`}?limit=20`));
  const [started, setStarted] = useState<string | number | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const list = drills.data?.drills ?? [];
  const running = list.some((d) => d.status === 'running');
  const startedDrill = started === null ? undefined : list.find((d) => String(d.id) === String(started));
  // Until the started drill shows up in the list, keep asking.
  const waiting = started !== null && (!startedDrill || startedDrill.status === 'running');
  usePoll(drills.reload, POLL_MS, running || waiting);

  const runDrill = async () => {
    setError(null);
    setMessage(null);
    try {
      const answer = await request<{ id: string | number; status: string }>(apiPath`/drills`, {
        method: 'POST',
      });
      setStarted(answer.id);
    } catch (caught) {
      if (caught instanceof ApiError && caught.code === 'drill_running') {
        setMessage(caught.message);
      } else if (!(caught instanceof ApiError && caught.status === 401)) {
        setError(messageOf(caught));
      }
    }
    await drills.reload();
  };

  return (
    <section class="card" aria-labelledby="drills-heading">
      <div class="page-head">
        <h3 id="drills-heading">Restore drills</h3>
        <button type="button" onClick={() => void runDrill()} disabled={running || waiting}>
          {running || waiting ? 'Drill running…' : 'Run drill'}
        </button>
      </div>
      <ErrorLine message={error ?? drills.error} />
      <p class="live" aria-live="polite">
        {message ??
          (waiting
            ? 'The drill restores the newest snapshot into a throwaway place; this page follows it every 2 seconds.'
            : startedDrill
              ? `The drill ${startedDrill.status === 'passed' ? 'passed' : 'failed'}.`
              : '')}
      </p>
      {list.length === 0 && <p class="muted">{drills.loading ? 'Loading…' : 'No drill has run yet.'}</p>}
      <ol class="drills">
        {list.map((drill) => (
          <DrillItem key={drill.id} drill={drill} />
        ))}
      </ol>
    </section>
  );
}

function DrillItem({ drill }: { drill: Drill }) {
  const failing = drill.checks.filter((c) => !c.ok);
  return (
    <li class="drill" data-drill-status={drill.status}>
      <div class="drill-head">
        {drill.status === 'running' ? (
          <StatusBadge status="INFO" label="RUNNING" />
        ) : (
          <StatusBadge
            status={drill.status === 'passed' ? 'OK' : 'FAIL'}
            label={drill.status === 'passed' ? 'PASS' : 'FAIL'}
          />
        )}
        <span>
          Started {formatTime(drill.startedAt)}
          {drill.finishedAt && `, finished ${formatTime(drill.finishedAt)}`}
        </span>
      </div>
      <dl class="facts">
        <dt>Snapshot</dt>
        <dd>
          <code>{shortId(drill.snapshotId)}</code>
        </dd>
        <dt>Target</dt>
        <dd>{drill.target ?? '—'}</dd>
        <dt>Recovery</dt>
        <dd>{formatSeconds(drill.recoverySeconds)}</dd>
        <dt>Checks</dt>
        <dd>
          {drill.checks.length === 0
            ? '—'
            : `${drill.checks.length - failing.length} of ${drill.checks.length} passed`}
        </dd>
      </dl>
      {drill.reason && <p class="error-text">{drill.reason}</p>}
      {failing.length > 0 && (
        <ul class="failing-checks" aria-label="Failing checks">
          {failing.map((check) => (
            <li key={check.name}>
              <StatusBadge status="FAIL" label={check.name} /> {check.detail ?? ''}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}
