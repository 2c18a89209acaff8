import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLedger } from '../../src/vault/ledger.ts';
import { localTarget, openRepository } from '../../src/vault/targets.ts';
import { startTestApi, type TestApi } from '../support/api.ts';

/** The deletions the local target's ledger holds, read as a restore onto a new disk would read them. */
async function localLedger(api: TestApi): Promise<string[]> {
  const repo = await openRepository(localTarget(api.config), api.config);
  const { records, unreadable } = await readLedger(repo, new Date(0).toISOString());
  expect(unreadable).toEqual([]);
  return records.map((record) => record.userId);
}

describe('DELETE /api/v1/users/{user}/data', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  it('I3: the answer comes only once the local ledger holds the deletion, even before any backup', async () => {
    const deleted = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/erin/data',
      headers: api.admin,
    });
    expect(deleted.statusCode).toBe(200);
    // Read at once, as a machine killed right after the answer would leave it: no background work to wait for.
    expect(await localLedger(api)).toContain('erin');
    // The status says so too: nothing is owed to the local ledger.
    const view = (await api.app.inject({ method: 'GET', url: '/api/v1/backups', headers: api.admin })).json();
    expect(view.deletionLedgers).toEqual([{ target: 'local', pending: 0, lagSeconds: 0 }]);
  });

  it('I3: an unwritable ledger is a 503 that says so, and repeating the request completes it', async () => {
    const dir = api.config.backup.dir;
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'not a folder');
    try {
      const refused = await api.app.inject({
        method: 'DELETE',
        url: '/api/v1/users/frank/data',
        headers: api.admin,
      });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBeDefined();
      expect(refused.json().error).toMatchObject({ code: 'ledger_unwritten' });
      expect(refused.json().error.message).toMatch(/repeat the request/);
    } finally {
      rmSync(dir, { force: true });
      mkdirSync(dir, { recursive: true });
    }
    const repeated = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/frank/data',
      headers: api.admin,
    });
    expect(repeated.statusCode).toBe(200);
    expect(await localLedger(api)).toContain('frank');
  });
});
