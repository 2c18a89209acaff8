import { useState } from 'preact/hooks';
import { apiPath, request } from '../api.ts';
import { type BadgeStatus, ErrorLine, StatusBadge } from '../components/status.tsx';
import { formatTime, shortId } from '../format.ts';
import { useLoad } from '../hooks.ts';
import type { Generation, Trend } from '../types.ts';

const GENERATION_BADGE: Record<Generation['status'], BadgeStatus> = {
  queued: 'INFO',
  running: 'INFO',
  succeeded: 'OK',
  failed: 'FAIL',
};

/** Only previews reach the page: the server answers a small webp for ?preview=1. */
export const previewSrc = (url: string) => `${url}${url.includes('?') ? '&' : '?'}preview=1`;

export function GalleryView() {
  const trends = useLoad(() => request<{ trends: Trend[] }>(`${apiPath`/trends`}?all=true`));
  return (
    <>
      <div class="page-head">
        <h2>Gallery</h2>
      </div>
      <section class="card" aria-labelledby="trends-heading">
        <h3 id="trends-heading">Trends and their examples</h3>
        <ErrorLine message={trends.error} />
        {trends.data?.trends.length === 0 && <p class="muted">No trend yet.</p>}
        <ul class="tiles">
          {(trends.data?.trends ?? []).map((trend) => (
            <li key={trend.slug} class="tile">
              {trend.example ? (
                <img
                  loading="lazy"
                  src={previewSrc(trend.example.url)}
                  alt={`Example of ${trend.title}`}
                  width={160}
                  height={160}
                />
              ) : (
                <div class="no-image">No example</div>
              )}
              <strong>
                {trend.emoji && <span aria-hidden="true">{trend.emoji} </span>}
                {trend.title}
              </strong>
              <span class="muted">
                {trend.slug} · {trend.status} · prompt {trend.prompt}
              </span>
            </li>
          ))}
        </ul>
      </section>
      <GenerationsSection />
    </>
  );
}

function GenerationsSection() {
  const [user, setUser] = useState('');
  const [shown, setShown] = useState<string | null>(null);
  const generations = useLoad(async () => {
    if (shown === null) return null;
    return await request<{ generations: Generation[] }>(
      `${apiPath`/generations`}?user=${encodeURIComponent(shown)}`,
    );
  }, [shown]);
  return (
    <section class="card" aria-labelledby="generations-heading">
      <h3 id="generations-heading">Generations</h3>
      <form
        class="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          setShown(user.trim());
        }}
      >
        <div class="field">
          <label for="generations-user">User id</label>
          <input
            id="generations-user"
            value={user}
            required
            onInput={(event) => setUser((event.target as HTMLInputElement).value)}
          />
        </div>
        <button type="submit">Show generations</button>
      </form>
      <ErrorLine message={generations.error} />
      {generations.data?.generations.length === 0 && <p class="muted">No generation for {shown}.</p>}
      <ul class="generations">
        {(generations.data?.generations ?? []).map((g) => (
          <li key={g.id} class="generation">
            <div class="generation-head">
              <StatusBadge status={GENERATION_BADGE[g.status]} label={g.status} />
              <code>{shortId(g.id)}</code>
              <span>
                {g.trend} for {g.user}, {formatTime(g.createdAt)}
              </span>
            </div>
            {g.error && <p class="error-text">{g.error}</p>}
            <div class="previews">
              {g.outputs.map((output) => (
                <img
                  key={output.variant}
                  loading="lazy"
                  src={previewSrc(output.previewUrl ?? output.url)}
                  alt={`Variant ${output.variant} of generation ${shortId(g.id)}`}
                  width={120}
                  height={120}
                />
              ))}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
