import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  getPrompt,
  listEvents,
  listVersions,
  type PromptWatcher,
  restoreVersion,
  type SyncResult,
  savePrompt,
  watchPrompts,
} from '../../src/prompts/index.ts';
import { MAX_BYTES, type PromptFixture, promptFixture, promptYaml, waitFor } from './helpers.ts';

describe('prompt watcher', () => {
  let fx: PromptFixture;
  let watcher: PromptWatcher | undefined;
  const logged: Array<{ level: string; msg: string }> = [];
  const logger = {
    info: (_: object, msg: string) => logged.push({ level: 'info', msg }),
    warn: (_: object, msg: string) => logged.push({ level: 'warn', msg }),
    error: (_: object, msg: string) => logged.push({ level: 'error', msg }),
  };
  beforeEach(async () => {
    fx = await promptFixture();
    logged.length = 0;
  });
  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    await fx.cleanup();
  });
  const file = (name: string) => path.join(fx.dir, `${name}.yaml`);
  // A long rescan interval: these tests see what fs.watch alone catches.
  const start = (changes: SyncResult[] = [], dir = fx.dir) => {
    watcher = watchPrompts(fx.db.sql, dir, {
      rescanSeconds: 3600,
      maxBytes: MAX_BYTES,
      logger,
      onChange: (result) => changes.push(result),
    });
    return watcher;
  };
  const versionCount = async (name: string) => (await listVersions(fx.db.sql, name).catch(() => [])).length;
  const untilVersions = (name: string, count: number) =>
    waitFor(async () => ((await versionCount(name)) === count ? true : undefined));

  it('I5: records hand edits (direct writes and editor-style temp + rename) as origin file within seconds', async () => {
    writeFileSync(file('cat'), promptYaml('cat', 'Before start'));
    const changes: SyncResult[] = [];
    const report = await start(changes).ready;
    expect(report.added).toEqual(['cat']);

    writeFileSync(file('cat'), promptYaml('cat', 'Edited in place'));
    await untilVersions('cat', 2);

    // What vim, VS Code and most editors do: write a temp file, then rename it over the prompt.
    const temp = path.join(fx.dir, '.cat.yaml.swp');
    writeFileSync(temp, promptYaml('cat', 'Saved by an editor'));
    renameSync(temp, file('cat'));
    await untilVersions('cat', 3);

    writeFileSync(file('new-one'), promptYaml('new-one'));
    await untilVersions('new-one', 1);

    const versions = await listVersions(fx.db.sql, 'cat');
    expect(versions.map((v) => v.origin)).toEqual(['file', 'file', 'file']);
    expect((await getPrompt(fx.db.sql, 'cat')).document?.title).toBe('Saved by an editor');
    expect(changes.filter((c) => c.outcome === 'added').map((c) => c.name)).toEqual([
      'cat',
      'cat',
      'cat',
      'new-one',
    ]);
    expect(logged.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('I5: an invalid edit is recorded once and never replaces the version in use', async () => {
    writeFileSync(file('dog'), promptYaml('dog', 'Good'));
    await start().ready;
    writeFileSync(file('dog'), 'name: dog\ntitle: [broken\n');
    await waitFor(async () =>
      (await getPrompt(fx.db.sql, 'dog')).fileState === 'invalid' ? true : undefined,
    );
    await watcher!.rescan();
    await watcher!.rescan();
    const prompt = await getPrompt(fx.db.sql, 'dog');
    expect(prompt.version).toBe(1);
    expect(prompt.document?.title).toBe('Good');
    expect((await listEvents(fx.db.sql, 'dog')).map((e) => e.event)).toEqual(['invalid']);
    expect(logged.some((l) => l.level === 'warn' && l.msg.includes('invalid'))).toBe(true);
  });

  it('I5: a deleted file is recorded, history stays, and restoreVersion brings the file back', async () => {
    await savePrompt(fx.db.sql, fx.dir, 'owl', promptYaml('owl', 'One'), {
      origin: 'api',
      maxBytes: MAX_BYTES,
    });
    await savePrompt(fx.db.sql, fx.dir, 'owl', promptYaml('owl', 'Two'), {
      origin: 'api',
      maxBytes: MAX_BYTES,
    });
    await start().ready;
    unlinkSync(file('owl'));
    await waitFor(async () =>
      (await getPrompt(fx.db.sql, 'owl')).fileState === 'deleted' ? true : undefined,
    );
    expect((await listVersions(fx.db.sql, 'owl')).map((v) => v.version)).toEqual([1, 2]);
    expect((await getPrompt(fx.db.sql, 'owl')).version).toBe(2);

    const result = await restoreVersion(fx.db.sql, fx.dir, 'owl', 1, { maxBytes: MAX_BYTES });
    expect(result).toMatchObject({ version: 3, created: true });
    expect(readFileSync(file('owl'), 'utf8')).toBe(promptYaml('owl', 'One'));
    // The watcher sees the restored file and records nothing more.
    await new Promise((resolve) => setTimeout(resolve, 400));
    await watcher!.rescan();
    expect((await listVersions(fx.db.sql, 'owl')).map((v) => v.origin)).toEqual(['api', 'api', 'restore']);
    expect((await listEvents(fx.db.sql, 'owl')).map((e) => e.event)).toEqual(['deleted', 'recovered']);
  });

  it('creates a missing folder, and the periodic rescan catches what fs.watch did not see', async () => {
    const dir = path.join(fx.dir, 'not-yet');
    watcher = watchPrompts(fx.db.sql, dir, { rescanSeconds: 1, maxBytes: MAX_BYTES, logger });
    await watcher.ready;
    expect(existsSync(dir)).toBe(true);
    // Replacing the folder detaches fs.watch from it; the rescan notices and watches the new one.
    rmSync(dir, { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    writeFileSync(path.join(fx.dir, 'elk.yaml'), promptYaml('elk'));
    mkdirSync(dir);
    renameSync(path.join(fx.dir, 'elk.yaml'), path.join(dir, 'elk.yaml'));
    await untilVersions('elk', 1);
    writeFileSync(path.join(dir, 'elk.yaml'), promptYaml('elk', 'Second'));
    await untilVersions('elk', 2);
  });

  it('keeps going after a database error and records the file on the next scan', async () => {
    await start().ready;
    await fx.db.sql`alter table prompt_versions add constraint no_cow check (content not like '%cow%')`;
    writeFileSync(file('cow'), promptYaml('cow'));
    await waitFor(async () => (logged.some((l) => l.level === 'error') ? true : undefined));
    await fx.db.sql`alter table prompt_versions drop constraint no_cow`;
    const report = await watcher!.rescan();
    expect(report.added).toEqual(['cow']);
    writeFileSync(file('pig'), promptYaml('pig'));
    await untilVersions('pig', 1);
  });

  it('close waits for running work and stops watching', async () => {
    const changes: SyncResult[] = [];
    await start(changes).ready;
    await watcher!.close();
    writeFileSync(file('late'), promptYaml('late'));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(changes).toEqual([]);
    await expect(watcher!.rescan()).rejects.toThrow(/closed/);
  });
});
