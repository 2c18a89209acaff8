import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { type AlertEvent, currentConditions, evaluateAlerts, webhookSender } from '../../src/ops/alerts.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

describe('alerts', () => {
  let db: TestDatabase;
  let server: http.Server;
  let url: string;
  const received: AlertEvent[] = [];
  let failNext = false;
  beforeAll(async () => {
    db = await createTestDatabase();
    // A webhook receiver on 127.0.0.1, standing in for Slack or Telegram, which are outside our reach.
    server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (c) => {
        body += c;
      });
      request.on('end', () => {
        if (failNext) {
          failNext = false;
          response.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    server?.close();
    await db?.drop();
  });

  it('I10: one alert per incident, one when it is resolved, none lost to a webhook outage', async () => {
    const config = loadConfig(
      { BACKUP_S3_URI: 's3://b/p', BACKUP_PASSWORD: 'x'.repeat(10), BACKUP_SCHEDULE: '0 * * * *' },
      { dotEnv: false },
    );
    const send = webhookSender(url);
    const evaluate = async () => evaluateAlerts(db.sql, await currentConditions(db.sql, config), send);
    const targets = (s3: boolean) =>
      db.sql.json([
        { name: 'local', ok: true },
        { name: 's3', ok: s3, ...(s3 ? {} : { error: 'The S3 endpoint is unreachable' }) },
      ]);

    await db.sql`insert into backup_runs (finished_at, status, targets) values (now(), 'partial', ${targets(false)})`;
    failNext = true;
    await expect(evaluate()).rejects.toThrow(/503/);
    expect(received).toHaveLength(0);
    await evaluate();
    await evaluate();
    await db.sql`insert into backup_runs (finished_at, status, targets) values (now(), 'partial', ${targets(false)})`;
    await evaluate();
    const firing = received
      .filter((e) => e.event === 'firing')
      .map((e) => e.key)
      .sort();
    expect(firing).toEqual(['backup-failed:s3', 'backup-stale:s3']);
    expect(received.every((e) => e.text.startsWith('🔴 trendgen: '))).toBe(true);

    await db.sql`insert into backup_runs (finished_at, status, targets) values (now(), 'succeeded', ${targets(true)})`;
    await evaluate();
    await evaluate();
    const resolved = received
      .filter((e) => e.event === 'resolved')
      .map((e) => e.key)
      .sort();
    expect(resolved).toEqual(['backup-failed:s3', 'backup-stale:s3']);
    expect(received).toHaveLength(4);

    await db.sql`insert into prompts (name, file_state, file_error) values ('broken', 'invalid', ${db.sql.json({ message: 'line 2, column 3: bad' })})`;
    await evaluate();
    expect(received.at(-1)).toMatchObject({ event: 'firing', key: 'prompt-invalid:broken' });
    expect(received.at(-1)!.text).toContain('line 2, column 3');
  });
});
