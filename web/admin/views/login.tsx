import { useState } from 'preact/hooks';
import { apiPath, messageOf, request } from '../api.ts';
import { ErrorLine } from '../components/status.tsx';
import type { Session } from '../types.ts';

export function LoginView({
  onLogin,
  notice,
}: {
  onLogin: (session: Session) => void;
  notice: string | null;
}) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await request<Session>(apiPath`/session`, {
        method: 'POST',
        body: { token },
        keepSessionOn401: true,
      });
      setToken('');
      onLogin(session);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <h1>trendgen console</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={(event) => void submit(event)} class="card">
        <div class="field">
          <label for="admin-token">Admin token</label>
          <input
            id="admin-token"
            type="password"
            autoComplete="current-password"
            required
            value={token}
            onInput={(event) => setToken((event.target as HTMLInputElement).value)}
            aria-describedby="admin-token-help"
          />
          <p id="admin-token-help" class="muted">
            ADMIN_TOKEN, or the contents of DATA_DIR/secrets/admin-token.
          </p>
        </div>
        <ErrorLine message={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
