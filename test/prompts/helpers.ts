import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

export const MAX_BYTES = 64 * 1024;

/** A valid prompt file; `extra` lines change its content without changing its meaning much. */
export function promptYaml(name: string, title = 'A title', extra = ''): string {
  return `name: ${name}\ntitle: ${title}\nmodel: local\ntemplate: "Turn {subject} into art"\nparameters:\n  size: medium\ntags: [test]\n${extra}`;
}

export interface PromptFixture {
  db: TestDatabase;
  dir: string;
  cleanup(): Promise<void>;
}

/** A fresh database and prompts folder: full scans see only this test's files. */
export async function promptFixture(): Promise<PromptFixture> {
  const db = await createTestDatabase();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trendgen-prompts-'));
  return {
    db,
    dir,
    cleanup: async () => {
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
