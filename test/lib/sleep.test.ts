import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleepUnlessAborted } from '../../src/lib/process.ts';
import { realClock } from '../../src/lib/scheduler.ts';

describe('waits on a long-lived abort signal', () => {
  it('leave no abort listener behind (the scheduler warned of 11 on one signal)', async () => {
    const controller = new AbortController();
    for (let i = 0; i < 20; i++) {
      await sleepUnlessAborted(1, controller.signal);
      await realClock.sleepUntil(new Date(Date.now() + 1), controller.signal);
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('end at once when the signal aborts, or was aborted already', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = sleepUnlessAborted(60_000, controller.signal);
    controller.abort();
    await waiting;
    await sleepUnlessAborted(60_000, controller.signal);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
