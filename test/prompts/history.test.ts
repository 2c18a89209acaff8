import { readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  getPrompt,
  getVersion,
  InvalidPromptNameError,
  listEvents,
  listPrompts,
  listVersions,
  PromptConflictError,
  PromptNotFoundError,
  PromptValidationError,
  restoreVersion,
  savePrompt,
  syncPromptFile,
  syncPromptsDir,
} from '../../src/prompts/index.ts';
import { sha256Hex } from '../../src/prompts/prompt-file.ts';
import { MAX_BYTES, type PromptFixture, promptFixture, promptYaml } from './helpers.ts';

describe('prompt history', () => {
  let fx: PromptFixture;
  beforeEach(async () => {
    fx = await promptFixture();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  const file = (name: string) => path.join(fx.dir, `${name}.yaml`);
  const sync = () => syncPromptsDir(fx.db.sql, fx.dir, { maxBytes: MAX_BYTES });
  const save = (name: string, text: string, ifMatch?: number) =>
    savePrompt(fx.db.sql, fx.dir, name, text, { origin: 'api', ifMatch, maxBytes: MAX_BYTES });

  it('I5: valid → invalid → valid files keep the last valid version current and every content in history', async () => {
    const v1 = promptYaml('cat', 'First');
    const broken = 'name: cat\ntitle: Second\nmodel: local\ntemplate: x\nparameters:\n  size: huge\n';
    const v2 = promptYaml('cat', 'Third');
    writeFileSync(file('cat'), v1);
    expect((await sync()).added).toEqual(['cat']);

    writeFileSync(file('cat'), broken);
    const report = await sync();
    expect(report.invalid).toEqual(['cat']);
    let prompt = await getPrompt(fx.db.sql, 'cat');
    expect(prompt.version).toBe(1);
    expect(prompt.content).toBe(v1);
    expect(prompt.fileState).toBe('invalid');
    expect(prompt.fileError).toEqual({
      message: 'line 6, column 9: parameters.size must be one of small, medium, large, hd',
      line: 6,
      column: 9,
    });

    // Rescans, and the same mistake made again, add no event.
    await sync();
    await syncPromptFile(fx.db.sql, fx.dir, 'cat', { maxBytes: MAX_BYTES });
    writeFileSync(file('cat'), v2);
    await sync();
    writeFileSync(file('cat'), broken);
    await sync();
    writeFileSync(file('cat'), v2);
    await sync();

    prompt = await getPrompt(fx.db.sql, 'cat');
    expect(prompt.version).toBe(2);
    expect(prompt.fileState).toBe('ok');
    expect(prompt.fileError).toBeNull();
    const versions = await listVersions(fx.db.sql, 'cat');
    expect(versions.map((v) => [v.version, v.origin, v.sha256])).toEqual([
      [1, 'file', sha256Hex(v1)],
      [2, 'file', sha256Hex(v2)],
    ]);
    expect((await getVersion(fx.db.sql, 'cat', 1)).content).toBe(v1);
    const events = await listEvents(fx.db.sql, 'cat');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'invalid', content: broken, sha256: sha256Hex(broken) });
    expect(events[0]!.size).toBe(Buffer.byteLength(broken));
    expect(events[0]!.error).toMatchObject({ line: 6, column: 9 });
  });

  it('I5: an invalid file that was never valid is recorded without a current version', async () => {
    writeFileSync(file('draft'), 'name: other\ntitle: T\nmodel: m\ntemplate: x\n');
    const report = await sync();
    expect(report.invalid).toEqual(['draft']);
    const [summary] = await listPrompts(fx.db.sql);
    expect(summary).toMatchObject({ name: 'draft', version: null, fileState: 'invalid', title: null });
    expect(summary!.fileError).toMatchObject({ line: 1, column: 7 });
    expect(await listVersions(fx.db.sql, 'draft')).toEqual([]);
  });

  it('I5: a stale If-Match is refused and leaves the file untouched', async () => {
    const first = await save('dog', promptYaml('dog', 'One'));
    expect(first).toMatchObject({ name: 'dog', version: 1, created: true });
    await save('dog', promptYaml('dog', 'Two'), 1);
    const before = statSync(file('dog'), { bigint: true });
    const error = await save('dog', promptYaml('dog', 'Three'), 1).catch((e) => e);
    expect(error).toBeInstanceOf(PromptConflictError);
    expect(error).toMatchObject({ currentVersion: 2, expectedVersion: 1 });
    expect(readFileSync(file('dog'), 'utf8')).toBe(promptYaml('dog', 'Two'));
    expect(statSync(file('dog'), { bigint: true }).mtimeNs).toBe(before.mtimeNs);
    expect((await listVersions(fx.db.sql, 'dog')).map((v) => v.version)).toEqual([1, 2]);
    // If-Match 0 means "only if new".
    await expect(save('fresh', promptYaml('fresh'), 0)).resolves.toMatchObject({ version: 1 });
    await expect(save('fresh', promptYaml('fresh', 'x'), 0)).rejects.toBeInstanceOf(PromptConflictError);
  });

  it('I5: ten concurrent saves of one prompt make ten consecutive versions; the file holds the last', async () => {
    const texts = Array.from({ length: 10 }, (_, i) => promptYaml('busy', `Edit ${i}`));
    const results = await Promise.all(texts.map((text) => save('busy', text)));
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const versions = await listVersions(fx.db.sql, 'busy');
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(new Set(versions.map((v) => v.sha256)).size).toBe(10);
    expect(versions.every((v) => v.origin === 'api')).toBe(true);
    const last = await getVersion(fx.db.sql, 'busy', 10);
    expect(readFileSync(file('busy'), 'utf8')).toBe(last.content);
    expect((await getPrompt(fx.db.sql, 'busy')).version).toBe(10);
    // The folder agrees with the database: a scan records nothing.
    expect((await sync()).changes).toEqual([]);
  });

  it('saving the current content again records nothing', async () => {
    await save('same', promptYaml('same'));
    await expect(save('same', promptYaml('same'))).resolves.toMatchObject({ version: 1, created: false });
    expect(await listVersions(fx.db.sql, 'same')).toHaveLength(1);
  });

  it('refuses invalid API content with line and column, creating nothing', async () => {
    const error = await save('bad', 'name: bad\ntitle: T\nmodel: m\ntemplate: x\nextra: 1\n').catch((e) => e);
    expect(error).toBeInstanceOf(PromptValidationError);
    expect(error).toMatchObject({ line: 5, column: 1 });
    await expect(getPrompt(fx.db.sql, 'bad')).rejects.toBeInstanceOf(PromptNotFoundError);
    expect(() => statSync(file('bad'))).toThrow();
    await expect(save('Bad Name', promptYaml('x'))).rejects.toBeInstanceOf(InvalidPromptNameError);
  });

  it('I5: a file written without its version row (crash between the two) is recorded with origin file', async () => {
    await save('crash', promptYaml('crash', 'Acknowledged'));
    writeFileSync(file('crash'), promptYaml('crash', 'Written, not committed'));
    const report = await sync();
    expect(report.added).toEqual(['crash']);
    const versions = await listVersions(fx.db.sql, 'crash');
    expect(versions.map((v) => [v.version, v.origin])).toEqual([
      [1, 'api'],
      [2, 'file'],
    ]);
  });

  it('I5: a hand edit not scanned yet goes into history before an API save, and makes If-Match stale', async () => {
    await save('race', promptYaml('race', 'API one'));
    writeFileSync(file('race'), promptYaml('race', 'By hand'));
    await expect(save('race', promptYaml('race', 'API two'), 1)).rejects.toBeInstanceOf(PromptConflictError);
    expect((await listVersions(fx.db.sql, 'race')).map((v) => v.origin)).toEqual(['api', 'file']);
    expect(readFileSync(file('race'), 'utf8')).toBe(promptYaml('race', 'By hand'));
    await expect(save('race', promptYaml('race', 'API two'), 2)).resolves.toMatchObject({ version: 3 });
  });

  it('I5: a 50 MB file is recorded invalid by its size and hash, without its content', async () => {
    await save('huge', promptYaml('huge'));
    const size = 50 * 1024 * 1024;
    truncateSync(file('huge'), size);
    const started = Date.now();
    const report = await sync();
    expect(report.invalid).toEqual(['huge']);
    expect(Date.now() - started).toBeLessThan(5000);
    await sync();
    const events = await listEvents(fx.db.sql, 'huge');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'invalid', size, content: null });
    expect(events[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(events[0]!.error!.message).toContain(`${size} bytes`);
    expect((await getPrompt(fx.db.sql, 'huge')).version).toBe(1);
  });

  it('keeps bytes that are not UTF-8 as base64', async () => {
    const bytes = Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xff, 0xfe, 0x0a]);
    writeFileSync(file('bin'), bytes);
    await sync();
    const [event] = await listEvents(fx.db.sql, 'bin');
    expect(event!.error).toMatchObject({ contentEncoding: 'base64' });
    expect(Buffer.from(event!.content!, 'base64')).toEqual(bytes);
    expect(event!.sha256).toBe(sha256Hex(bytes));
  });

  it('marks a vanished file deleted once, keeps history, and restore brings the file back', async () => {
    await save('gone', promptYaml('gone', 'One'));
    await save('gone', promptYaml('gone', 'Two'));
    unlinkSync(file('gone'));
    expect((await sync()).deleted).toEqual(['gone']);
    await sync();
    expect((await getPrompt(fx.db.sql, 'gone')).fileState).toBe('deleted');
    expect((await listEvents(fx.db.sql, 'gone')).map((e) => e.event)).toEqual(['deleted']);

    const restored = await restoreVersion(fx.db.sql, fx.dir, 'gone', 1, { maxBytes: MAX_BYTES });
    expect(restored).toMatchObject({ version: 3, created: true });
    expect(readFileSync(file('gone'), 'utf8')).toBe(promptYaml('gone', 'One'));
    expect((await listVersions(fx.db.sql, 'gone')).map((v) => v.origin)).toEqual(['api', 'api', 'restore']);
    expect((await listEvents(fx.db.sql, 'gone')).map((e) => e.event)).toEqual(['deleted', 'recovered']);
    expect((await getPrompt(fx.db.sql, 'gone')).fileState).toBe('ok');
    // Restoring what is current changes nothing; a stale If-Match is refused.
    await expect(restoreVersion(fx.db.sql, fx.dir, 'gone', 3)).resolves.toMatchObject({ created: false });
    await expect(restoreVersion(fx.db.sql, fx.dir, 'gone', 2, { ifMatch: 2 })).rejects.toBeInstanceOf(
      PromptConflictError,
    );
  });

  it('a file put back by hand after deletion is recorded as recovered', async () => {
    await save('back', promptYaml('back'));
    unlinkSync(file('back'));
    await sync();
    writeFileSync(file('back'), promptYaml('back'));
    expect((await sync()).unchanged).toEqual(['back']);
    expect((await listEvents(fx.db.sql, 'back')).map((e) => e.event)).toEqual(['deleted', 'recovered']);
    expect(await listVersions(fx.db.sql, 'back')).toHaveLength(1);
  });

  it('skips file names that cannot be prompt names and ignores other files', async () => {
    writeFileSync(file('ok'), promptYaml('ok'));
    writeFileSync(path.join(fx.dir, 'Capital.yaml'), promptYaml('x'));
    writeFileSync(path.join(fx.dir, 'short.yml'), promptYaml('x'));
    writeFileSync(path.join(fx.dir, '.ok.yaml.swp'), 'junk');
    writeFileSync(path.join(fx.dir, 'README.md'), 'notes');
    const report = await sync();
    expect(report.added).toEqual(['ok']);
    expect(report.skipped.sort()).toEqual(['Capital.yaml', 'short.yml']);
  });

  it('does not mark prompts deleted when the folder itself is missing', async () => {
    await save('kept', promptYaml('kept'));
    const report = await syncPromptsDir(fx.db.sql, path.join(fx.dir, 'nope'), { maxBytes: MAX_BYTES });
    expect(report).toMatchObject({ directoryMissing: true, deleted: [] });
    expect((await getPrompt(fx.db.sql, 'kept')).fileState).toBe('ok');
  });

  it('answers missing prompts and versions with PromptNotFoundError', async () => {
    await save('one', promptYaml('one'));
    await expect(getPrompt(fx.db.sql, 'none')).rejects.toThrow('There is no prompt named none.');
    await expect(getVersion(fx.db.sql, 'one', 7)).rejects.toThrow('Prompt one has no version 7.');
    await expect(getVersion(fx.db.sql, 'none', 1)).rejects.toThrow('There is no prompt named none.');
    await expect(listVersions(fx.db.sql, 'none')).rejects.toBeInstanceOf(PromptNotFoundError);
    await expect(restoreVersion(fx.db.sql, fx.dir, 'one', 9)).rejects.toBeInstanceOf(PromptNotFoundError);
    await expect(listEvents(fx.db.sql, 'NOPE')).rejects.toBeInstanceOf(InvalidPromptNameError);
  });
});
