import { lstatSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptChecks } from '../../src/ops/doctor/prompts.ts';
import type { DoctorContext } from '../../src/ops/doctor/types.ts';
import { syncPromptsDir } from '../../src/prompts/index.ts';
import { readPromptFile } from '../../src/prompts/prompt-file.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir } from '../support/temp.ts';
import { MAX_BYTES, promptYaml } from './helpers.ts';

const SYMLINK_SENTENCE =
  'line 1, column 1: the file is a symbolic link, which is never followed: put the prompt file itself in PROMPTS_DIR';

/** A file outside PROMPTS_DIR, its access time set in the past so that any read of it moves the atime. */
function outsideFile(dir: string, name: string, content: string): { file: string; atimeMs: () => number } {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  utimesSync(file, new Date('2001-01-01T00:00:00Z'), new Date());
  return { file, atimeMs: () => statSync(file).atimeMs };
}

describe('a hostile PROMPTS_DIR: links are never followed out of the folder', () => {
  const outside = tempDir('outside');
  let api: TestApi;
  let secretValid: ReturnType<typeof outsideFile>;
  let secretShadow: ReturnType<typeof outsideFile>;
  beforeAll(async () => {
    api = await startTestApi();
    // A root-only file that happens to be a valid prompt, and one like /etc/shadow.
    secretValid = outsideFile(outside.dir, 'secret.yaml', promptYaml('secretx', 'TOPSECRET-VALID'));
    secretShadow = outsideFile(outside.dir, 'shadow', 'root:TOPSECRET-SHADOW-HASH:19000:0:99999:7:::\n');
    writeFileSync(path.join(api.config.promptsDir, 'fine.yaml'), promptYaml('fine'));
    symlinkSync(secretValid.file, path.join(api.config.promptsDir, 'secretx.yaml'));
    symlinkSync(secretShadow.file, path.join(api.config.promptsDir, 'shadow.yaml'));
  });
  afterAll(async () => {
    await api?.close();
    outside.remove();
  });

  it('the reader sees a link and never opens its target', async () => {
    const read = await readPromptFile(path.join(api.config.promptsDir, 'secretx.yaml'), MAX_BYTES);
    expect(read).toMatchObject({ kind: 'special', what: 'symlink', size: 0 });
    expect(secretValid.atimeMs()).toBe(Date.parse('2001-01-01T00:00:00Z'));
  });

  it('a scan records each link as invalid with one sentence, and nothing of its target', async () => {
    const report = await syncPromptsDir(api.db.sql, api.config.promptsDir, { maxBytes: MAX_BYTES });
    expect(report.added).toEqual(['fine']);
    expect(report.invalid.sort()).toEqual(['secretx', 'shadow']);
    const rows = await api.db.sql`
      select name, file_state, file_error from prompts where name in ('secretx', 'shadow') order by name`;
    for (const row of rows) {
      expect(row.file_state).toBe('invalid');
      expect(row.file_error).toEqual({ message: SYMLINK_SENTENCE, line: 1, column: 1 });
    }
    const everything = JSON.stringify([
      await api.db.sql`select * from prompt_versions`,
      await api.db.sql`select * from prompt_events`,
      await api.db.sql`select * from prompts`,
    ]);
    expect(everything).not.toContain('TOPSECRET');
    expect(secretValid.atimeMs()).toBe(Date.parse('2001-01-01T00:00:00Z'));
    expect(secretShadow.atimeMs()).toBe(Date.parse('2001-01-01T00:00:00Z'));
  });

  it('the API serves no content through a link, and names it invalid in fileState, fileError and /readyz', async () => {
    const one = await api.app.inject({ url: '/api/v1/prompts/secretx', headers: api.client });
    expect(one.statusCode).toBe(404);
    expect(one.body).not.toContain('TOPSECRET');
    const yaml = await api.app.inject({ url: '/api/v1/prompts/secretx?format=yaml', headers: api.client });
    expect(yaml.body).not.toContain('TOPSECRET');
    const list = await api.app.inject({ url: '/api/v1/prompts', headers: api.client });
    const prompts = list.json().prompts as Array<{ name: string; fileState: string; fileError: unknown }>;
    expect(prompts.find((p) => p.name === 'secretx')).toMatchObject({
      fileState: 'invalid',
      fileError: { message: SYMLINK_SENTENCE },
    });
    const ready = await api.app.inject({ url: '/readyz' });
    const check = (ready.json().checks as Array<{ name: string; detail: string }>).find(
      (c) => c.name === 'prompts',
    );
    expect(check?.detail).toContain(`secretx.yaml: ${SYMLINK_SENTENCE}`);
    expect(check?.detail).toContain(`shadow.yaml: ${SYMLINK_SENTENCE}`);
    expect(ready.body).not.toContain('TOPSECRET');
  });

  it('doctor names each link in the same sentence, without reading its target', async () => {
    const check = promptChecks().find((c) => c.id === 'prompts.valid')!;
    const outcome = await check.run({ config: api.config } as DoctorContext);
    expect(outcome.status).toBe('WARN');
    expect(outcome.message).toContain(`secretx.yaml ${SYMLINK_SENTENCE}`);
    expect(outcome.message).toContain(`shadow.yaml ${SYMLINK_SENTENCE}`);
    expect(outcome.message).not.toContain('TOPSECRET');
    expect(secretValid.atimeMs()).toBe(Date.parse('2001-01-01T00:00:00Z'));
    expect(secretShadow.atimeMs()).toBe(Date.parse('2001-01-01T00:00:00Z'));
  });

  it('an API save over a link replaces the link, never writes through it', async () => {
    const put = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/prompts/shadow',
      headers: { ...api.admin, 'content-type': 'application/yaml' },
      payload: promptYaml('shadow', 'Replaced'),
    });
    expect(put.statusCode, put.body).toBeLessThan(300);
    const file = path.join(api.config.promptsDir, 'shadow.yaml');
    expect(lstatSync(file).isFile()).toBe(true);
    expect(statSync(secretShadow.file).size).toBe(
      Buffer.byteLength('root:TOPSECRET-SHADOW-HASH:19000:0:99999:7:::\n'),
    );
  });
});
