import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { openDatabase } from '../../src/db/connection.ts';
import { embeddedPostgres } from '../../src/services/embedded.ts';
import { waitForExit } from '../../src/services/process-utils.ts';
import { fakePng, SAMPLE_PROMPT } from '../support/api.ts';
import { walkFiles } from '../support/files.ts';
import { killTree, startUp, type UpProcess } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('faults: SIGKILL of the whole process tree during 100 concurrent uploads', () => {
  const temp = tempDir('crash');
  const env = {
    DATA_DIR: path.join(temp.dir, 'data'),
    PROMPTS_DIR: path.join(temp.dir, 'prompts'),
    ADMIN_TOKEN: randomBytes(24).toString('hex'),
  };
  const auth = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
  let up: UpProcess | undefined;
  afterAll(async () => {
    await up?.stop();
    temp.remove();
  });

  it('I1, I2: every acknowledged upload is readable with its SHA-256; nothing half-written is visible', async () => {
    const seed = Number(process.env.FAULT_SEED ?? Date.now() % 100_000);
    console.log(`upload-crash seed ${seed}`);
    up = await startUp(env);
    await fetch(`${up.baseUrl}/api/v1/prompts/p`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/yaml' },
      body: SAMPLE_PROMPT('p'),
    });
    const slugs = Array.from({ length: 10 }, (_, i) => `t${i}`);
    for (const slug of slugs) {
      const created = await fetch(`${up.baseUrl}/api/v1/trends`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ slug, title: slug, prompt: 'p' }),
      });
      expect(created.status).toBe(201);
    }

    const acknowledged: Array<{ slug: string; sha256: string; key: string }> = [];
    let finished = 0;
    const killAfter = 10 + (seed % 50);
    const baseUrl = up.baseUrl;
    const upload = async (i: number) => {
      const image = fakePng(100_000 + ((seed * 7 + i * 131) % 400_000), Buffer.from(`${seed}-${i}`));
      const slug = slugs[i % slugs.length]!;
      try {
        const response = await fetch(`${baseUrl}/api/v1/trends/${slug}/example`, {
          method: 'PUT',
          headers: { ...auth, 'content-type': 'image/png' },
          body: image,
        });
        if (response.ok) {
          const body = (await response.json()) as { sha256: string; key: string };
          expect(body.sha256).toBe(sha(image));
          acknowledged.push({ slug, sha256: body.sha256, key: body.key });
        }
      } catch {
        // The connection died with the server: not acknowledged, so nothing is promised.
      } finally {
        finished++;
      }
    };
    const pid = up.child.pid!;
    const all = Promise.all(Array.from({ length: 100 }, (_, i) => upload(i)));
    while (finished < killAfter && finished < 100) await new Promise((r) => setTimeout(r, 5));
    const killed = killTree(pid);
    await all;
    for (const p of killed) await waitForExit(p, 10_000);
    up = undefined;
    expect(acknowledged.length).toBeGreaterThan(0);

    up = await startUp(env);
    for (const { key, sha256 } of acknowledged) {
      const response = await fetch(`${up.baseUrl}/api/v1/objects/${key}`, { headers: auth });
      expect(response.status, key).toBe(200);
      expect(sha(Buffer.from(await response.arrayBuffer()))).toBe(sha256);
    }

    // Nothing visible is half-written: every blob in the store hashes to the name it has.
    const objectsDir = path.join(env.DATA_DIR, 'objects');
    const visible = walkFiles(objectsDir).filter(
      (file) => !path.relative(objectsDir, file).startsWith('.tmp'),
    );
    for (const file of visible) {
      expect(path.basename(file).split('.')[0], file).toBe(sha(readFileSync(file)));
    }
    // No row refers to a missing object.
    const config = loadConfig(env, { dotEnv: false });
    const running = embeddedPostgres(config).findRunning()!;
    const sql = openDatabase(running.url, { max: 1 });
    try {
      const rows = await sql`select key, sha256, size from objects`;
      for (const row of rows) {
        const file = path.join(objectsDir, row.key as string);
        expect(statSync(file).size, row.key as string).toBe(Number(row.size));
      }
      const dangling = await sql`select t.slug from trends t left join objects o on o.key = t.example_key
        where t.example_key is not null and o.key is null`;
      expect(dangling).toEqual([]);
      console.log(
        `upload-crash: ${acknowledged.length} acknowledged of 100, ${rows.length} object rows, ${visible.length} blobs`,
      );
    } finally {
      await sql.end();
    }
  }, 400_000);
});
