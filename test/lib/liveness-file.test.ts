import { spawn } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { killTree } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

const STUCK_CHILD = path.resolve(import.meta.dirname, '../support/stuck-child.mjs');

const mtimeOf = (file: string) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
};

// LIVENESS_FILE is what Kubernetes' exec probes of the worker, scheduler and object stream read: it must stay
// fresh while the process works and grow old once its event loop is stuck.
describe('LIVENESS_FILE: touched while healthy, left to age when stuck', () => {
  const temp = tempDir('liveness-file');
  afterAll(() => temp.remove());

  const run = (dir: string, file: string) =>
    spawn(process.execPath, [STUCK_CHILD, 'loop'], {
      stdio: 'ignore',
      env: { ...process.env, STUCK_DIR: dir, STUCK_AFTER_MS: '1000', LIVENESS_FILE: file },
    });

  it('a stuck event loop stops the touches; a healthy process keeps the file under a second old', async () => {
    const dir = path.join(temp.dir, 'loop');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'alive');
    // First start: the event loop blocks for good half a second in.
    const stuck = run(dir, file);
    try {
      await waitFor('the liveness file', async () => mtimeOf(file), 30_000);
      await sleep(1500);
      const frozen = mtimeOf(file);
      await sleep(2000);
      expect(stuck.exitCode).toBeNull();
      expect(mtimeOf(file)).toBe(frozen);
      expect(Date.now() - frozen!).toBeGreaterThan(2000);
    } finally {
      await killTree(stuck.pid!);
    }
    // Second start: healthy (the marker says it was stuck once), so the file keeps being touched.
    const healthy = run(dir, file);
    try {
      await waitFor(
        'a fresh touch',
        async () => (Date.now() - mtimeOf(file)! < 1000 ? true : undefined),
        30_000,
      );
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        expect(Date.now() - mtimeOf(file)!).toBeLessThan(1000);
      }
    } finally {
      await killTree(healthy.pid!);
    }
  }, 90_000);
});
