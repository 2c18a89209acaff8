import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/lib/process.ts';
import { type PromptWatcher, syncPromptFile, watchPrompts } from '../../src/prompts/index.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { MAX_BYTES, promptYaml } from './helpers.ts';

// The race of issue 16: hand edits at least 500 ms apart against API saves about every 100 ms, on three prompts
// at once. RACE_HAND_EDITS sets the total number of hand edits (150 by default, about 30 s).
const PROMPTS = ['race-a', 'race-b', 'race-c'];
const HAND_EDITS = Number(process.env.RACE_HAND_EDITS ?? 150);

describe('I5: hand edits racing API saves are never lost', () => {
  let api: TestApi;
  let watcher: PromptWatcher;
  beforeAll(async () => {
    api = await startTestApi({}, {});
    watcher = watchPrompts(api.db.sql, api.config.promptsDir, { rescanSeconds: 1, maxBytes: MAX_BYTES });
    await watcher.ready;
  });
  afterAll(async () => {
    await watcher?.close();
    await api?.close();
  });

  it(`${HAND_EDITS} hand edits against API PUTs every ~100 ms: every hand-edited content is in the history`, async () => {
    const handContents = new Map<string, string[]>(PROMPTS.map((name) => [name, []]));
    let puts = 0;
    let stop = false;
    const putLoop = async (name: string) => {
      for (let n = 0; !stop; n++) {
        const response = await api.app.inject({
          method: 'PUT',
          url: `/api/v1/prompts/${name}`,
          headers: { ...api.admin, 'content-type': 'application/yaml' },
          payload: promptYaml(name, `api ${n}`),
        });
        expect(response.statusCode, response.body).toBeLessThan(300);
        puts++;
        await sleep(30 + Math.random() * 80);
      }
    };
    const handLoop = async (name: string, edits: number) => {
      const file = path.join(api.config.promptsDir, `${name}.yaml`);
      // On a slow machine the saves lag: hand edits go on until the saves reach their count too.
      for (let n = 0; n < edits || puts < putTarget; n++) {
        // Mostly valid edits (new versions); every fifth one invalid (an event that keeps the content).
        const content =
          n % 5 === 4
            ? `name: ${name}\ntitle: hand ${n}\nparameters: [unclosed\n`
            : promptYaml(name, `hand ${n}`);
        if (n % 2 === 0) {
          // An editor that saves with a rename (vim's default, most IDEs).
          const temp = path.join(api.config.promptsDir, `.${name}.hand-${n}.swp`);
          writeFileSync(temp, content);
          renameSync(temp, file);
        } else {
          // One that truncates and rewrites the file in place.
          writeFileSync(file, content);
        }
        handContents.get(name)!.push(content);
        await sleep(500 + Math.random() * 100);
      }
    };
    const perPrompt = Math.ceil(HAND_EDITS / PROMPTS.length);
    const putTarget = Math.ceil((HAND_EDITS * 16) / 3);
    const puts$ = PROMPTS.map((name) => putLoop(name));
    await Promise.all(PROMPTS.map((name) => handLoop(name, perPrompt)));
    stop = true;
    await Promise.all(puts$);
    // The watcher's debounce and a full scan: the last hand edits are recorded too.
    await sleep(500);
    await watcher.rescan();

    const lost: string[] = [];
    for (const name of PROMPTS) {
      const seen = new Set<string>();
      for (const row of await api.db.sql`select content from prompt_versions where name = ${name}`)
        seen.add(row.content as string);
      for (const row of await api.db.sql`select content from prompt_events where name = ${name}`)
        if (row.content !== null) seen.add(row.content as string);
      for (const content of handContents.get(name)!) {
        if (!seen.has(content)) lost.push(`${name}: ${content.split('\n')[1]}`);
      }
    }
    const handEdits = [...handContents.values()].reduce((sum, list) => sum + list.length, 0);
    console.log(`hand-edit race: ${handEdits} hand edits, ${puts} API PUTs, ${lost.length} hand edits lost`);
    expect(handEdits).toBeGreaterThanOrEqual(HAND_EDITS);
    expect(puts).toBeGreaterThanOrEqual(putTarget);
    expect(lost).toEqual([]);
  }, 300_000);
});

describe('I5: a save killed between its two renames loses nothing', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());
  const sync = (name: string) =>
    syncPromptFile(api.db.sql, api.config.promptsDir, name, { maxBytes: MAX_BYTES });

  it('the file set aside comes back when its path is empty, and is recorded when it is not', async () => {
    const dir = api.config.promptsDir;
    for (const name of ['left-a', 'left-b']) {
      writeFileSync(path.join(dir, `${name}.yaml`), promptYaml(name, 'first'));
      await sync(name);
    }
    // left-a: killed after moving an unrecorded hand edit aside, before linking the new file in.
    writeFileSync(path.join(dir, '.left-a.yaml.displaced'), promptYaml('left-a', 'hand edit'));
    renameSync(path.join(dir, 'left-a.yaml'), path.join(dir, '.left-a.yaml.gone'));
    expect((await sync('left-a')).outcome).toBe('added');
    expect(readFileSync(path.join(dir, 'left-a.yaml'), 'utf8')).toBe(promptYaml('left-a', 'hand edit'));
    expect(existsSync(path.join(dir, '.left-a.yaml.displaced'))).toBe(false);
    // left-b: killed after linking the new file in, before recording what it displaced.
    writeFileSync(path.join(dir, '.left-b.yaml.displaced'), promptYaml('left-b', 'hand edit'));
    writeFileSync(path.join(dir, 'left-b.yaml'), promptYaml('left-b', 'api save'));
    await sync('left-b');
    const contents = (
      await api.db.sql`select content from prompt_versions where name = 'left-b' order by version`
    ).map((r) => (r.content as string).split('\n')[1]);
    expect(contents).toEqual(['title: first', 'title: hand edit', 'title: api save']);
    expect(existsSync(path.join(dir, '.left-b.yaml.displaced'))).toBe(false);
  });

  it('an editor that truncated the file before a save and writes after it set the file aside is recorded', async () => {
    const dir = api.config.promptsDir;
    const file = path.join(dir, 'slow-editor.yaml');
    writeFileSync(file, promptYaml('slow-editor', 'first'));
    await sync('slow-editor');
    // The editor's open truncates the file; its write comes 300 ms later, while the save below is under way.
    const editor = openSync(file, 'w');
    const saving = api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/slow-editor',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: promptYaml('slow-editor', 'api save'),
    });
    await sleep(300);
    writeSync(editor, promptYaml('slow-editor', 'slow hand edit'));
    closeSync(editor);
    expect((await saving).statusCode).toBeLessThan(300);
    const contents = (
      await api.db.sql`select content from prompt_versions where name = 'slow-editor' order by version`
    ).map((r) => (r.content as string).split('\n')[1]);
    expect(contents).toContain('title: slow hand edit');
  });
});
