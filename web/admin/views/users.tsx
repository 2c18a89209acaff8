import { useState } from 'preact/hooks';
import { apiPath, messageOf, request } from '../api.ts';
import { ErrorLine, StatusBadge } from '../components/status.tsx';
import { formatBytes, formatTime, shortId } from '../format.ts';
import type { UserData, UserDeletion } from '../types.ts';

export function UsersView() {
  const [user, setUser] = useState('');
  const [data, setData] = useState<UserData | null>(null);
  const [confirmation, setConfirmation] = useState('');
  const [deletion, setDeletion] = useState<UserDeletion | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const lookUp = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setData(null);
    setDeletion(null);
    setConfirmation('');
    setBusy(true);
    try {
      setData(await request<UserData>(apiPath`/users/${user.trim()}/data`));
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (event: Event) => {
    event.preventDefault();
    if (!data || confirmation !== data.user) return;
    setError(null);
    setBusy(true);
    try {
      setDeletion(await request<UserDeletion>(apiPath`/users/${data.user}/data`, { method: 'DELETE' }));
      setData(null);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <div class="page-head">
        <h2>Users</h2>
      </div>
      <section class="card" aria-labelledby="user-heading">
        <h3 id="user-heading">Delete a user's data</h3>
        <form class="inline-form" onSubmit={(event) => void lookUp(event)}>
          <div class="field">
            <label for="user-id">User id</label>
            <input
              id="user-id"
              value={user}
              required
              autoComplete="off"
              onInput={(event) => setUser((event.target as HTMLInputElement).value)}
            />
          </div>
          <button type="submit" disabled={busy}>
            Show what would be deleted
          </button>
        </form>
        <ErrorLine message={error} />
        {data && <UserSummary data={data} />}
        {data && (
          <form class="danger-zone" onSubmit={(event) => void remove(event)}>
            <p>
              This hides {data.user}'s generations and deletes their photos and results. It is recorded in the
              backups' deletion ledger, so a restore deletes them again.
            </p>
            <div class="field">
              <label for="confirm-user">Type the user id again to confirm</label>
              <input
                id="confirm-user"
                value={confirmation}
                autoComplete="off"
                onInput={(event) => setConfirmation((event.target as HTMLInputElement).value)}
              />
            </div>
            <button type="submit" class="danger" disabled={busy || confirmation !== data.user}>
              Delete all data of {data.user}
            </button>
          </form>
        )}
        {deletion && (
          <p class="success" role="status">
            <StatusBadge status="OK" label="Deleted" /> {deletion.userId}: {deletion.generations ?? 0}{' '}
            generation(s) and {deletion.objects ?? 0} object(s), recorded {formatTime(deletion.requestedAt)}.
          </p>
        )}
      </section>
    </>
  );
}

function UserSummary({ data }: { data: UserData }) {
  return (
    <div class="summary" data-testid="user-summary">
      <h4>What would be deleted</h4>
      <dl class="facts">
        <dt>User</dt>
        <dd>{data.user}</dd>
        <dt>Generations</dt>
        <dd>{data.generations}</dd>
        <dt>Objects</dt>
        <dd>
          {data.objects} ({formatBytes(data.bytes)})
        </dd>
      </dl>
      {data.recent.length > 0 && (
        <ul class="plain" aria-label="Recent generations">
          {data.recent.map((g) => (
            <li key={g.id}>
              <code>{shortId(g.id)}</code> {g.trend && `${g.trend}, `}
              {g.status}, {formatTime(g.createdAt)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
