import { useState } from 'preact/hooks';
import { apiPath, request } from '../api.ts';
import { Placeholder, PreviewImage, previewOf } from '../components/preview.tsx';
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

/** Enough to see what is being made now without loading a hundred previews at once. */
export const NEWEST_GENERATIONS = 24;

/** Why a generation has no image to show, in the words its tile carries. */
const NO_OUTPUT: Record<Generation['status'], string> = {
  queued: 'Queued: no image yet',
  running: 'Running: no image yet',
  succeeded: 'No image was stored',
  failed: 'Failed: no image',
};

/** The stored preview the worker made; the server makes one from the full image only for older outputs. */
const outputPreview = (output: Generation['outputs'][number]) => output.previewUrl ?? previewOf(output.url);

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
                <PreviewImage
                  key={trend.example.url}
                  src={previewOf(trend.example.url)}
                  alt={`Example of ${trend.title}`}
                  size={160}
                />
              ) : (
                <Placeholder text="No example" size={160} />
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
  // '' is every user's: the operator's first question is what is being made now, whoever asked for it.
  const [shown, setShown] = useState('');
  const generations = useLoad(async () => {
    const query = new URLSearchParams({ limit: String(NEWEST_GENERATIONS) });
    if (shown) query.set('user', shown);
    return await request<{ generations: Generation[] }>(`${apiPath`/generations`}?${query}`);
  }, [shown]);
  const list = generations.data?.generations;
  return (
    <section class="card" aria-labelledby="generations-heading">
      <h3 id="generations-heading">Newest generations</h3>
      <p class="muted section-note">
        {shown
          ? `The ${NEWEST_GENERATIONS} newest of ${shown}, newest first.`
          : `The ${NEWEST_GENERATIONS} newest of every user, newest first. Type a user id to see only theirs.`}
      </p>
      <form
        class="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          setShown(user.trim());
        }}
      >
        <div class="field">
          <label for="generations-user">User id (optional)</label>
          <input
            id="generations-user"
            value={user}
            autoComplete="off"
            onInput={(event) => {
              const value = (event.target as HTMLInputElement).value;
              setUser(value);
              // Clearing the filter is asking for everyone's again.
              if (value.trim() === '') setShown('');
            }}
          />
        </div>
        <button type="submit">Show generations</button>
        <button type="button" onClick={() => void generations.reload()} disabled={generations.loading}>
          Refresh
        </button>
      </form>
      <ErrorLine message={generations.error} />
      {list?.length === 0 && (
        <p class="muted">{shown ? `No generation for ${shown}.` : 'No generation yet.'}</p>
      )}
      <ul class="generations">
        {(list ?? []).map((g) => (
          <GenerationItem key={g.id} generation={g} />
        ))}
      </ul>
    </section>
  );
}

function GenerationItem({ generation: g }: { generation: Generation }) {
  return (
    <li class="generation" data-generation-status={g.status}>
      <div class="generation-head">
        <StatusBadge status={GENERATION_BADGE[g.status]} label={g.status} />
        <span>
          <strong>{g.trend}</strong> for <strong class="generation-user">{g.user}</strong>,{' '}
          {formatTime(g.createdAt)}
        </span>
        <code class="muted">{shortId(g.id)}</code>
      </div>
      {g.error && <p class="error-text">{g.error}</p>}
      <div class="previews">
        {g.outputs.length === 0 ? (
          <Placeholder text={NO_OUTPUT[g.status]} size={120} />
        ) : (
          g.outputs.map((output) => (
            <PreviewImage
              key={output.variant}
              src={outputPreview(output)}
              alt={`Variant ${output.variant + 1} of ${g.trend} for ${g.user}`}
              size={120}
            />
          ))
        )}
      </div>
    </li>
  );
}
