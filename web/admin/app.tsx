import { useEffect, useState } from 'preact/hooks';
import { apiPath, onSessionLost, request, setCsrfToken } from './api.ts';
import { formatTime } from './format.ts';
import { PAGES, type Route, useRoute } from './router.ts';
import type { Session } from './types.ts';
import { GalleryView } from './views/gallery.tsx';
import { LoginView } from './views/login.tsx';
import { PromptsView } from './views/prompts.tsx';
import { ProtectionView } from './views/protection.tsx';
import { SnapshotsView } from './views/snapshots.tsx';
import { UsersView } from './views/users.tsx';

type SessionState =
  | { kind: 'checking' }
  | { kind: 'out'; notice: string | null }
  | { kind: 'in'; session: Session };

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'protection':
      return <ProtectionView />;
    case 'snapshots':
      return <SnapshotsView />;
    case 'prompts':
      return <PromptsView selected={route.detail} />;
    case 'gallery':
      return <GalleryView />;
    case 'users':
      return <UsersView />;
  }
}

export function App() {
  const route = useRoute();
  const [state, setState] = useState<SessionState>({ kind: 'checking' });

  const signIn = (session: Session) => {
    setCsrfToken(session.csrfToken);
    setState({ kind: 'in', session });
  };

  useEffect(() => {
    onSessionLost(() => setState({ kind: 'out', notice: 'Your session ended; log in again.' }));
    request<Session>(apiPath`/session`, { keepSessionOn401: true }).then(signIn, () =>
      setState({ kind: 'out', notice: null }),
    );
  }, []);

  useEffect(() => {
    const title = PAGES.find((p) => p.id === route.page)?.title ?? 'Console';
    document.title = state.kind === 'in' ? `${title} · trendgen console` : 'Log in · trendgen console';
  }, [route.page, state.kind]);

  if (state.kind === 'checking') return <p class="loading">Loading…</p>;
  if (state.kind === 'out') return <LoginView onLogin={signIn} notice={state.notice} />;

  const logOut = async () => {
    // Whatever the answer, this browser is logged out: the cookie is the server's to clear.
    await request(apiPath`/session`, { method: 'DELETE' }).catch(() => undefined);
    setCsrfToken(null);
    setState({ kind: 'out', notice: 'You are logged out.' });
  };

  return (
    <>
      {/* A button, not a #main link: the hash is the route. */}
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <h1>trendgen console</h1>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((page) => (
              <li key={page.id}>
                <a href={`#/${page.id}`} aria-current={route.page === page.id ? 'page' : undefined}>
                  {page.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="session">
          <span class="muted">Session until {formatTime(state.session.expiresAt)}</span>
          <button type="button" onClick={() => void logOut()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page key={route.page} route={route} />
      </main>
    </>
  );
}
