import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/ops/logger.ts';
import { startTestApi } from '../support/api.ts';

describe('request logs', () => {
  it('carry a request id and never a token or a URL password', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger('info', 'api', sink);
    const api = await startTestApi({}, { logger });
    try {
      const stranger = randomBytes(20).toString('hex');
      const response = await api.app.inject({
        method: 'GET',
        url: '/api/v1/trends',
        headers: { ...api.admin, 'x-request-id': 'req-123' },
      });
      expect(response.headers['x-request-id']).toBe('req-123');
      await api.app.inject({
        method: 'GET',
        url: '/api/v1/trends',
        headers: { authorization: `Bearer ${stranger}` },
      });
      logger.error({ err: new Error('connect failed for postgres://trends:hunter2@db:5432/trends') }, 'boom');
      logger.flush();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const text = lines.join('');
      expect(text).toContain('req-123');
      expect(text).toContain('[redacted]');
      expect(text).not.toContain(api.adminToken);
      expect(text).not.toContain(stranger);
      expect(text).not.toContain('hunter2');
    } finally {
      await api.close();
    }
  });
});
