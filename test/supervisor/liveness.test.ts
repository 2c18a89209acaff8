import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Liveness } from '../../src/lib/liveness.ts';
import { isAlive, waitFor } from '../../src/lib/process.ts';
import { SupervisedChildren } from '../../src/supervisor/children.ts';
import { startTestApi } from '../support/api.ts';
import { tempDir } from '../support/temp.ts';

const STUCK_CHILD = path.resolve(import.meta.dirname, '../support/stuck-child.mjs');

function makeFifos(dir: string, count = 4): string[] {
  return Array.from({ length: count }, (_, i) => {
    const fifo = path.join(dir, `fifo-${i}`);
    execFileSync('mkfifo', [fifo]);
    return fifo;
  });
}

/** Opening the writing end lets every reader blocked in open() go: the threads they held are free again. */
function releaseFifos(fifos: string[]): void {
  for (const fifo of fifos) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader is waiting on it.
    }
  }
}

describe('liveness: a stuck thread pool or event loop is noticed', () => {
  const temp = tempDir('liveness');
  afterAll(() => temp.remove());

  it('/healthz answers 503 naming the stuck thread pool, and 200 once it runs again', async () => {
    const dir = path.join(temp.dir, 'healthz');
    execFileSync('mkdir', ['-p', dir]);
    const fifos = makeFifos(dir);
    const liveness = new Liveness(1000).start();
    const api = await startTestApi({}, { liveness });
    try {
      expect((await api.app.inject({ url: '/healthz' })).statusCode).toBe(200);
      // Four opens of FIFOs without a writer: the four threads of libuv's pool wait for good.
      const blocked = fifos.map((fifo) => open(fifo, 'r').then((handle) => handle.close()));
      await waitFor(
        'healthz to fail',
        async () => ((await api.app.inject({ url: '/healthz' })).statusCode === 503 ? true : undefined),
        10_000,
      );
      const stuck = await api.app.inject({ url: '/healthz' });
      expect(stuck.json()).toMatchObject({ status: 'stuck' });
      expect(stuck.json().detail).toMatch(/^the libuv thread pool has run no job for \d+ s/);
      releaseFifos(fifos);
      await Promise.all(blocked);
      await waitFor(
        'healthz to pass again',
        async () => ((await api.app.inject({ url: '/healthz' })).statusCode === 200 ? true : undefined),
        10_000,
      );
    } finally {
      releaseFifos(fifos);
      liveness.stop();
      await api.close();
    }
  });

  describe('the supervisor of `up` kills and restarts a stuck child', () => {
    let children: SupervisedChildren | undefined;
    afterEach(async () => {
      await children?.stop();
      children = undefined;
    });

    for (const mode of ['pool', 'loop'] as const) {
      it(`a child whose ${mode === 'pool' ? 'thread pool' : 'event loop'} is stuck is restarted`, async () => {
        const dir = path.join(temp.dir, mode);
        execFileSync('mkdir', ['-p', dir]);
        const fifos = mode === 'pool' ? makeFifos(dir) : [];
        const env = { STUCK_DIR: dir, STUCK_AFTER_MS: '1500' };
        try {
          children = new SupervisedChildren([[mode]], pino({ level: 'silent' }), async () => env, {
            livenessTimeoutMs: 1500,
            entry: STUCK_CHILD,
          });
          const started = Date.now();
          children.startAll(env);
          const starts = () =>
            existsSync(path.join(dir, 'starts'))
              ? readFileSync(path.join(dir, 'starts'), 'utf8').trim().split('\n').map(Number)
              : [];
          const [first, second] = await waitFor(
            'the stuck child to be replaced',
            async () => (starts().length >= 2 ? starts() : undefined),
            30_000,
            100,
          );
          expect(isAlive(first!)).toBe(false);
          expect(isAlive(second!)).toBe(true);
          // Stuck after 0.5 s, noticed 1.5 s later: well within ten seconds even on a loaded machine.
          expect(Date.now() - started).toBeLessThan(20_000);
        } finally {
          releaseFifos(fifos);
        }
      });
    }
  });
});
