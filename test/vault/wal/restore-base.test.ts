import { describe, expect, it } from 'vitest';
import { EarlyWriteback } from '../../../src/vault/wal/restore-base.ts';

async function* chunks(count: number, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, i);
}

async function drain(source: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of source) out.push(chunk);
  return out;
}

describe("a base backup's extraction starts the disk writing early", () => {
  it('passes every chunk through unchanged and starts a writeback per step, one at a time', async () => {
    const started: string[] = [];
    let inFlight = 0;
    let most = 0;
    const writeback = new EarlyWriteback('/restored', 250, async (dir) => {
      started.push(dir);
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 1));
      inFlight--;
    });
    const out = await drain(writeback.counting(chunks(10, 100)));
    await writeback.settled();
    expect(out.map((c) => c[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(started.length).toBeGreaterThanOrEqual(1);
    expect(started.length).toBeLessThanOrEqual(3);
    expect(new Set(started)).toEqual(new Set(['/restored']));
    expect(most).toBe(1);
  });

  it('a writeback the disk refuses fails the extraction with its sentence', async () => {
    const refused = new Error(
      'Could not flush the file system under /restored to disk (EIO): check the disk, then run again.',
    );
    const writeback = new EarlyWriteback('/restored', 100, async () => {
      throw refused;
    });
    const consumed = drain(writeback.counting(chunks(1000, 100))).then(() => writeback.settled());
    await expect(consumed).rejects.toBe(refused);
  });
});
