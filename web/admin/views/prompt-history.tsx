import { useEffect, useState } from 'preact/hooks';
import { apiPath, messageOf, request } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { ScrollRegion } from '../components/scroll-region.tsx';
import { SideBySideDiff } from '../components/side-by-side-diff.tsx';
import { ErrorLine } from '../components/status.tsx';
import { Time } from '../components/time.tsx';
import { formatBytes, formatTime } from '../format.ts';
import { useLoad } from '../hooks.ts';
import type { PromptVersion, PromptVersionInfo } from '../types.ts';

function VersionSelect({
  id,
  label,
  value,
  versions,
  onChange,
}: {
  id: string;
  label: string;
  value: number | null;
  versions: PromptVersionInfo[];
  onChange: (version: number) => void;
}) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select
        id={id}
        value={value === null ? '' : String(value)}
        onChange={(event) => onChange(Number((event.target as HTMLSelectElement).value))}
      >
        {versions.map((v) => (
          <option key={v.version} value={String(v.version)}>
            v{v.version} ({v.origin}, {formatTime(v.createdAt)})
          </option>
        ))}
      </select>
    </div>
  );
}

export function PromptHistory({ name, onRestored }: { name: string; onRestored: () => void }) {
  const versions = useLoad(
    () => request<{ versions: PromptVersionInfo[] }>(apiPath`/prompts/${name}/versions`),
    [name],
  );
  const list = versions.data?.versions ?? [];
  const current = list[list.length - 1]?.version ?? null;
  const [before, setBefore] = useState<number | null>(null);
  const [after, setAfter] = useState<number | null>(null);
  const [restoring, setRestoring] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);

  // Once the history is known, compare the version before the current one with the current one.
  useEffect(() => {
    if (list.length === 0 || before !== null) return;
    setBefore((list[list.length - 2] ?? list[0]!).version);
    setAfter(list[list.length - 1]!.version);
  }, [list, before]);

  const pair = useLoad(async () => {
    if (before === null || after === null) return null;
    const [a, b] = await Promise.all(
      [before, after].map((v) => request<PromptVersion>(apiPath`/prompts/${name}/versions/${v}`)),
    );
    return { a: a!, b: b! };
  }, [name, before, after]);

  const restore = async () => {
    if (restoring === null) return;
    setBusy(true);
    try {
      const saved = await request<{ version: number }>(apiPath`/prompts/${name}/restore`, {
        method: 'POST',
        body: { version: restoring },
      });
      setOutcome({
        ok: true,
        text: `Version ${restoring} of ${name} is current again, as version ${saved.version}.`,
      });
      setBefore(restoring);
      setAfter(saved.version);
      await versions.reload();
      onRestored();
    } catch (error) {
      setOutcome({ ok: false, text: messageOf(error) });
    } finally {
      setBusy(false);
      setRestoring(null);
    }
  };

  return (
    <section class="card" aria-labelledby="history-heading">
      <h3 id="history-heading">History of {name}</h3>
      <ErrorLine message={versions.error} />
      {outcome && (
        <p class={outcome.ok ? 'success' : 'error'} role={outcome.ok ? 'status' : 'alert'}>
          {outcome.text}
        </p>
      )}
      {list.length > 0 && (
        <div class="compare">
          <VersionSelect
            id="diff-before"
            label="Compare version"
            value={before}
            versions={list}
            onChange={setBefore}
          />
          <VersionSelect
            id="diff-after"
            label="with version"
            value={after}
            versions={list}
            onChange={setAfter}
          />
        </div>
      )}
      <ErrorLine message={pair.error} />
      {pair.data && (
        <>
          <SideBySideDiff
            before={pair.data.a.content}
            after={pair.data.b.content}
            beforeLabel={`v${pair.data.a.version}`}
            afterLabel={`v${pair.data.b.version}`}
          />
          <div class="actions">
            {[pair.data.a.version, pair.data.b.version]
              .filter((v, i, all) => v !== current && all.indexOf(v) === i)
              .map((v) => (
                <button key={v} type="button" onClick={() => setRestoring(v)}>
                  Restore version {v}
                </button>
              ))}
          </div>
        </>
      )}
      <VersionsTable versions={list} current={current} />
      <ConfirmDialog
        open={restoring !== null}
        title={`Restore version ${restoring} of ${name}?`}
        confirmLabel={`Restore version ${restoring}`}
        busy={busy}
        onConfirm={() => void restore()}
        onCancel={() => setRestoring(null)}
      >
        <p>
          Its content becomes the prompt in use, recorded as a new version (origin “restore”). Every version
          stays in the history.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function VersionsTable({ versions, current }: { versions: PromptVersionInfo[]; current: number | null }) {
  return (
    <ScrollRegion label="Versions">
      <table>
        <caption>Every version, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Origin</th>
            <th scope="col">Size</th>
            <th scope="col">Recorded</th>
          </tr>
        </thead>
        <tbody>
          {[...versions].reverse().map((v) => (
            <tr key={v.version}>
              <td>
                v{v.version}
                {v.version === current && ' (current)'}
              </td>
              <td>{v.origin}</td>
              <td>{formatBytes(v.size)}</td>
              <td>
                <Time iso={v.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}
