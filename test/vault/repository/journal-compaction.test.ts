import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import {
  compactObjectsJournal,
  JOURNAL_COMPACT_AT,
  type ObjectsJournalRecord,
  Repository,
  readObjectsJournal,
  writeObjectsJournal,
} from '../../../src/vault/repository/index.ts';
import { tempDir } from '../../support/temp.ts';

const temp = tempDir('journal-compaction');
afterAll(() => temp.remove());

const hex = (n: number) => randomBytes(n).toString('hex');

function union(records: ObjectsJournalRecord[]): Map<string, string> {
  const objects = new Map<string, string>();
  for (const record of records) for (const o of record.objects) objects.set(o.key, JSON.stringify(o));
  return objects;
}

const newestWatermark = (records: ObjectsJournalRecord[]) =>
  records
    .map((r) => r.watermark ?? '')
    .sort()
    .at(-1);

describe('the objects journal stays short however long the stream runs', () => {
  it('merges old records into one, keeping every object and the newest watermark', async () => {
    const repo = await Repository.init(new FileBlobStore(temp.dir), { authKey: randomBytes(32) });
    const start = Date.parse('2026-12-01T00:00:00Z');
    for (let i = 0; i < JOURNAL_COMPACT_AT + 20; i++) {
      const sha = hex(32);
      await writeObjectsJournal(repo, {
        version: 1,
        time: new Date(start + i * 1000).toISOString(),
        watermark: new Date(start + i * 1000 - 500).toISOString(),
        // Every tenth record names an object again (a retried batch): it is one object.
        objects: [
          { key: `trends/x/${i % 10 === 0 ? 'same' : sha}.png`, sha256: sha, size: i, chunks: [hex(32)] },
        ],
      });
    }
    const before = await readObjectsJournal(repo);
    expect(before.records).toHaveLength(JOURNAL_COMPACT_AT + 20);

    const result = await compactObjectsJournal(repo);
    expect(result).toEqual({ merged: JOURNAL_COMPACT_AT + 20 - 16, written: 1 });
    const after = await readObjectsJournal(repo);
    expect(after.records).toHaveLength(17);
    expect(after.unreadable).toEqual([]);
    expect(union(after.records)).toEqual(union(before.records));
    expect(newestWatermark(after.records)).toBe(newestWatermark(before.records));

    // Short again: nothing to do.
    expect(await compactObjectsJournal(repo)).toEqual({ merged: 0, written: 0 });
  });

  it('a record that does not read stops the merge and stays for check to report', async () => {
    const store = new FileBlobStore(`${temp.dir}/second`);
    const repo = await Repository.init(store, { authKey: randomBytes(32) });
    const keys: string[] = [];
    for (let i = 0; i < JOURNAL_COMPACT_AT; i++) {
      keys.push(
        await writeObjectsJournal(repo, {
          version: 1,
          time: new Date(Date.parse('2026-12-01T00:00:00Z') + i).toISOString(),
          objects: [{ key: `o/${i}.png`, sha256: hex(32), size: 1, chunks: [] }],
        }),
      );
    }
    await store.put(keys[3]!, Buffer.from('not a record'), { size: 12 });
    expect(await compactObjectsJournal(repo)).toEqual({ merged: 0, written: 0 });
    const after = await readObjectsJournal(repo);
    expect(after.records.length + after.unreadable.length).toBe(JOURNAL_COMPACT_AT);
  });
});
