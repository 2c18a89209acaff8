import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promptsCommand } from '../../src/cli/prompts.ts';
import { UsageError } from '../../src/cli/usage-error.ts';
import { listVersions, savePrompt } from '../../src/prompts/index.ts';
import { MAX_BYTES, type PromptFixture, promptFixture, promptYaml } from './helpers.ts';

/** Runs `trendgen prompts …` in this process against the test database, capturing stdout and stderr. */
async function run(fx: PromptFixture, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const saved = { DATABASE_URL: process.env.DATABASE_URL, PROMPTS_DIR: process.env.PROMPTS_DIR };
  process.env.DATABASE_URL = fx.db.url;
  process.env.PROMPTS_DIR = fx.dir;
  const out: string[] = [];
  const err: string[] = [];
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    await promptsCommand().parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  return { stdout: out.join(''), stderr: err.join('') };
}

describe('trendgen prompts (in-process)', () => {
  let fx: PromptFixture;
  beforeEach(async () => {
    fx = await promptFixture();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  const file = (name: string) => path.join(fx.dir, `${name}.yaml`);
  const save = (name: string, title: string) =>
    savePrompt(fx.db.sql, fx.dir, name, promptYaml(name, title), { origin: 'api', maxBytes: MAX_BYTES });

  it('list records hand edits first, then prints a table or one JSON document', async () => {
    await save('alpha', 'Alpha');
    writeFileSync(file('beta'), promptYaml('beta', 'Beta by hand'));
    writeFileSync(file('gamma'), 'name: gamma\ntitle: G\nmodel: m\ntemplate: x\nsize: hd\n');
    const human = await run(fx, 'list');
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME +VERSION +FILE +MODEL +UPDATED +TITLE$/);
    expect(lines[1]).toMatch(/^alpha +1 +ok +local +\S+ \S+ +Alpha$/);
    expect(lines[2]).toMatch(/^beta +1 +ok +local .* Beta by hand$/);
    expect(lines[3]).toMatch(/^gamma +- +invalid +- /);
    expect(human.stdout).toContain(
      'gamma.yaml is invalid, line 5, column 1: the prompt has unknown key "size"',
    );
    expect(human.stderr).toContain('beta: recorded version 1');
    const json = JSON.parse((await run(fx, 'list', '--json')).stdout);
    expect(json.map((p: { name: string; version: number | null }) => [p.name, p.version])).toEqual([
      ['alpha', 1],
      ['beta', 1],
      ['gamma', null],
    ]);
  });

  it('history, show and diff read versions; restore makes an old one current', async () => {
    await save('cat', 'One');
    await save('cat', 'Two');
    const history = await run(fx, 'history', 'cat');
    expect(history.stdout).toMatch(/^VERSION +ORIGIN +SHA256 +BYTES +CREATED\n1 +api .*\n2 \* +api /);
    const historyJson = JSON.parse((await run(fx, 'history', 'cat', '--json')).stdout);
    expect(historyJson.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);

    expect((await run(fx, 'show', 'cat@1')).stdout).toBe(promptYaml('cat', 'One'));
    expect((await run(fx, 'show', 'cat')).stdout).toBe(promptYaml('cat', 'Two'));
    expect(JSON.parse((await run(fx, 'show', 'cat@1', '--json')).stdout).document.title).toBe('One');

    const diff = (await run(fx, 'diff', 'cat@1', 'cat')).stdout;
    expect(diff).toContain('--- cat@1');
    expect(diff).toContain('+++ cat@2');
    expect(diff).toContain('-title: One\n+title: Two');
    expect(JSON.parse((await run(fx, 'diff', 'cat@1', 'cat@1', '--json')).stdout)).toMatchObject({
      identical: true,
      patch: '',
    });

    const restored = JSON.parse((await run(fx, 'restore', 'cat@1', '--json')).stdout);
    expect(restored).toMatchObject({ name: 'cat', version: 3, created: true, restoredFrom: 1 });
    expect(readFileSync(file('cat'), 'utf8')).toBe(promptYaml('cat', 'One'));
    expect((await listVersions(fx.db.sql, 'cat')).map((v) => v.origin)).toEqual(['api', 'api', 'restore']);
    expect((await run(fx, 'restore', 'cat@3')).stdout).toContain('already the content in use');
  });

  it('wrong usage is a UsageError; a missing prompt or version is one plain sentence', async () => {
    await save('cat', 'One');
    await expect(run(fx, 'show', 'Not A Name')).rejects.toBeInstanceOf(UsageError);
    await expect(run(fx, 'restore', 'cat')).rejects.toThrow('restore needs a version: NAME@VERSION.');
    await expect(run(fx, 'diff', 'cat@1')).rejects.toBeInstanceOf(UsageError);
    await expect(run(fx, 'history', 'cat', '--bogus')).rejects.toBeInstanceOf(UsageError);
    await expect(run(fx, 'restore', 'cat@1', '--if-match', 'x')).rejects.toBeInstanceOf(UsageError);
    await expect(run(fx, 'show', 'dog')).rejects.toThrow('There is no prompt named dog.');
    await expect(run(fx, 'show', 'cat@9')).rejects.toThrow('Prompt cat has no version 9.');
  });

  it('--help on a subcommand prints its usage and ends as commander help (exit 0 in main)', async () => {
    const error = await run(fx, 'diff', '--help').catch((e) => e);
    expect(error).toBeInstanceOf(CommanderError);
    expect(error.exitCode).toBe(0);
  });

  it('every subcommand documents itself', () => {
    const command = promptsCommand();
    expect(command.commands.map((c) => c.name())).toEqual(['list', 'history', 'show', 'diff', 'restore']);
    for (const sub of command.commands) {
      expect(sub.description().length).toBeGreaterThan(20);
      expect(sub.helpInformation()).toContain('--json');
    }
  });
});
