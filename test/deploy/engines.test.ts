import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.ts';
import { ROOT } from './deploy-files.ts';

const temp = tempDir('engines');
afterAll(() => temp.remove());

describe('the locked dependencies on the Node the project supports (issue 16 item 8)', () => {
  it('`npm ci` warns of no package whose engines refuse this Node (EBADENGINE)', () => {
    // A dry run on a copy of package.json and the lock: npm reads every package's engines from the lock,
    // offline, without touching this worktree's node_modules.
    for (const file of ['package.json', 'package-lock.json']) {
      copyFileSync(path.join(ROOT, file), path.join(temp.dir, file));
    }
    const run = spawnSync(
      'npm',
      ['ci', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'],
      { cwd: temp.dir, encoding: 'utf8', timeout: 120_000 },
    );
    const output = `${run.stdout}${run.stderr}`;
    expect(run.status, output).toBe(0);
    expect(output, output).not.toMatch(/EBADENGINE/);
  });
});
