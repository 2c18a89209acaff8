import { apiPath, request } from '../api.ts';
import { ErrorLine, StatusBadge } from '../components/status.tsx';
import { formatTime } from '../format.ts';
import { useLoad } from '../hooks.ts';
import type { PromptSummary } from '../types.ts';
import { PromptHistory } from './prompt-history.tsx';

function FileState({ prompt }: { prompt: PromptSummary }) {
  if (prompt.fileState === 'ok') return <StatusBadge status="OK" label="valid" />;
  if (prompt.fileState === 'deleted') return <StatusBadge status="WARN" label="file deleted" />;
  const where =
    prompt.fileError?.line !== undefined
      ? ` at line ${prompt.fileError.line}, column ${prompt.fileError.column ?? '?'}`
      : '';
  return (
    <span>
      <StatusBadge status="FAIL" label={`invalid${where}`} />{' '}
      {prompt.fileError?.message && <span class="error-text">{prompt.fileError.message}</span>}
    </span>
  );
}

export function PromptsView({ selected }: { selected: string | undefined }) {
  const prompts = useLoad(() => request<{ prompts: PromptSummary[] }>(apiPath`/prompts`));
  const list = prompts.data?.prompts ?? [];
  return (
    <>
      <div class="page-head">
        <h2>Prompts</h2>
      </div>
      <section class="card" aria-labelledby="prompts-heading">
        <h3 id="prompts-heading">Prompts in use</h3>
        <ErrorLine message={prompts.error} />
        {list.length === 0 && <p class="muted">{prompts.loading ? 'Loading…' : 'No prompt yet.'}</p>}
        <ul class="prompt-list">
          {list.map((prompt) => (
            <li key={prompt.name} class={prompt.name === selected ? 'selected' : ''}>
              <a
                href={`#/prompts/${encodeURIComponent(prompt.name)}`}
                aria-current={prompt.name === selected ? 'page' : undefined}
              >
                {prompt.name}
              </a>
              <span class="muted">
                {prompt.version === null ? 'no valid version' : `v${prompt.version}`},{' '}
                {formatTime(prompt.updatedAt)}
              </span>
              <FileState prompt={prompt} />
            </li>
          ))}
        </ul>
      </section>
      {selected && <PromptHistory key={selected} name={selected} onRestored={() => void prompts.reload()} />}
    </>
  );
}
