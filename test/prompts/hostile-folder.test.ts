import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
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

/** Resolves with `promise`, or rejects when it takes longer than `ms`: a hang is a failure, not a stuck test. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
  ]);
}

describe('a hostile PROMPTS_DIR: FIFOs, sockets and devices never hang the API', () => {
  let api: TestApi;
  const fifos: string[] = [];
  let socket: net.Server | undefined;
  let device = false;
  beforeAll(async () => {
    api = await startTestApi();
    const dir = api.config.promptsDir;
    for (const name of ['pipe', 'pipe2', 'pipe3', 'pipe4', 'pipe5']) {
      const fifo = path.join(dir, `${name}.yaml`);
      execFileSync('mkfifo', [fifo]);
      fifos.push(fifo);
    }
    socket = net.createServer().listen(path.join(dir, 'sock.yaml'));
    await once(socket, 'listening');
    try {
      // A character device like /dev/null (root may create one; a container may forbid it).
      execFileSync('mknod', [path.join(dir, 'dev.yaml'), 'c', '1', '3'], { stdio: 'ignore' });
      device = true;
    } catch {
      device = false;
    }
    writeFileSync(path.join(dir, 'empty.yaml'), '');
  });
  afterAll(async () => {
    // Lets go any reader an old build left blocked in open(), so the test process can end.
    for (const fifo of fifos) {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // Nobody waits on it.
      }
    }
    socket?.close();
    await api?.close();
  });

  it('a scan records each as invalid in one sentence, within a second', async () => {
    const report = await within(
      1000,
      'the scan',
      syncPromptsDir(api.db.sql, api.config.promptsDir, { maxBytes: MAX_BYTES }),
    );
    expect(report.failed).toEqual([]);
    const expected = [
      'empty',
      'pipe',
      'pipe2',
      'pipe3',
      'pipe4',
      'pipe5',
      'sock',
      ...(device ? ['dev'] : []),
    ];
    expect(report.invalid.sort()).toEqual(expected.sort());
    const errors = new Map(
      (await api.db.sql`select name, file_error from prompts`).map((r) => [r.name, r.file_error.message]),
    );
    expect(errors.get('pipe')).toBe(
      'line 1, column 1: the file is a named pipe (FIFO), not a regular file: replace it with the prompt file itself',
    );
    expect(errors.get('sock')).toBe(
      'line 1, column 1: the file is a socket, not a regular file: replace it with the prompt file itself',
    );
    if (device)
      expect(errors.get('dev')).toBe(
        'line 1, column 1: the file is a device, not a regular file: replace it with the prompt file itself',
      );
  });

  it('PUTs of prompts whose files are FIFOs answer at once, and the thread pool stays free for everything else', async () => {
    const puts = ['pipe', 'pipe2', 'pipe3', 'pipe4', 'pipe5'].map((name) =>
      api.app.inject({
        method: 'PUT',
        url: `/api/v1/prompts/${name}`,
        headers: { ...api.admin, 'content-type': 'application/yaml' },
        payload: promptYaml(name),
      }),
    );
    const answers = await within(2000, 'five PUTs over FIFOs', Promise.all(puts));
    for (const answer of answers) expect(answer.statusCode, answer.body).toBeLessThan(300);
    // Files, uploads and readiness all need the pool: each answers within a second.
    await within(1000, 'a file read', readFile(path.join(api.config.promptsDir, 'pipe.yaml')));
    const ready = await within(1000, '/readyz', api.app.inject({ url: '/readyz' }));
    const prompts = (ready.json().checks as Array<{ name: string; ok: boolean }>).find(
      (c) => c.name === 'prompts',
    );
    expect(prompts?.ok).toBe(true);
    for (const fifo of fifos) expect(lstatSync(fifo).isFile()).toBe(true);
  });
});
