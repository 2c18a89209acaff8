import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from '../support/api.ts';

describe('small edges of the API', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());

  it('a URL with malformed percent-encoding gets our error shape, in one sentence', async () => {
    for (const url of ['/api/v1/objects/%', '/api/v1/prompts/%zz', '/api/v1/objects/a%2']) {
      const response = await api.app.inject({ url, headers: api.client });
      expect(response.statusCode, url).toBe(400);
      expect(response.json(), url).toEqual({
        error: {
          code: 'bad_request',
          message:
            'The request URL is not valid: a % must be followed by two hex digits; percent-encode the path.',
        },
      });
    }
  });
});
