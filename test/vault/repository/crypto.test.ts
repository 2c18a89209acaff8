import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { contentId, contentIdOffThread } from '../../../src/vault/repository/crypto.ts';

// The thread-pool version must name content exactly as the format does (docs/repository-format.md).
describe('naming content on the thread pool', () => {
  const key = randomBytes(32);
  const plaintext = randomBytes(700_000);

  it('gives the id contentId gives, keyed and unkeyed, and another under another key', async () => {
    expect(await contentIdOffThread(key, plaintext)).toBe(contentId(key, plaintext));
    expect(await contentIdOffThread(undefined, plaintext)).toBe(contentId(undefined, plaintext));
    expect(await contentIdOffThread(randomBytes(32), plaintext)).not.toBe(contentId(key, plaintext));
    expect(await contentIdOffThread(key, Buffer.alloc(0))).toBe(contentId(key, Buffer.alloc(0)));
  });
});
