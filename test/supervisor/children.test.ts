import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/lib/process.ts';
import { SupervisedChildren } from '../../src/supervisor/children.ts';
import { tempDir } from '../support/temp.ts';

const IDLE_CHILD = path.resolve(import.meta.dirname, '../support/stuck-child.mjs');

describe('the supervisor of `up`: its children', () => {
  const temp = tempDir('children');
  let children: SupervisedChildren | undefined;
  afterEach(async () => {
    await children?.stop();
    children = undefined;
  });
  afterAll(() => temp.remove());

  it.runIf(process.platform === 'linux')(
    "start with glibc's malloc settings that give freed buffers back, an explicit value winning",
    async () => {
      const dir = path.join(temp.dir, 'env');
      mkdirSync(dir, { recursive: true });
      // The child gets stuck only on a start without this marker: here it just stays up.
      writeFileSync(path.join(dir, 'stuck-once'), '');
      const env = { STUCK_DIR: dir, STUCK_AFTER_MS: '60000', MALLOC_ARENA_MAX: '4' };
      children = new SupervisedChildren([['idle']], pino({ level: 'silent' }), async () => env, {
        livenessTimeoutMs: 60_000,
        entry: IDLE_CHILD,
      });
      children.startAll(env);
      const starts = path.join(dir, 'starts');
      const pid = await waitFor(
        'the child to start',
        async () => (existsSync(starts) ? readFileSync(starts, 'utf8').trim() || undefined : undefined),
        30_000,
        100,
      );
      const environment = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      expect(environment).toContain('MALLOC_MMAP_THRESHOLD_=1048576');
      expect(environment).toContain('MALLOC_ARENA_MAX=4');
      expect(environment).not.toContain('MALLOC_ARENA_MAX=2');
    },
  );
});
