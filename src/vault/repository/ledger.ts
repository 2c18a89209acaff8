import { readAll } from '../../blobstore/index.ts';
import type { RepositoryHandle } from './handle.ts';

/**
 * Ledger entries: small records kept beside the snapshots under `ledger/<book>/<name>` (format §7.2), encoded
 * like snapshot records (encrypted when the repository is). The caller names them; a name sorts by time.
 */
const LEDGER_PREFIX = 'ledger/';

const entryKey = (book: string, name: string) => `${LEDGER_PREFIX}${book}/${name}`;

export async function writeLedgerEntry(
  repo: RepositoryHandle,
  book: string,
  name: string,
  plaintext: Buffer,
): Promise<void> {
  const bytes = await repo.codec.encode('snapshot', plaintext);
  await repo.store.put(entryKey(book, name), bytes, { size: bytes.length });
}

/** The names of a book's entries. */
export async function ledgerEntryNames(repo: RepositoryHandle, book: string): Promise<string[]> {
  const names: string[] = [];
  const prefix = entryKey(book, '');
  for await (const info of repo.store.list(prefix)) names.push(info.key.slice(prefix.length));
  return names;
}

/** An entry's plaintext, authenticated; throws when it is damaged or unreadable. */
export async function readLedgerEntry(repo: RepositoryHandle, book: string, name: string): Promise<Buffer> {
  const { plaintext } = await repo.codec.decode(await readAll(await repo.store.get(entryKey(book, name))));
  return plaintext;
}

/** Copies the entries `to` lacks as stored bytes (the repositories share keys). */
export async function copyLedger(from: RepositoryHandle, to: RepositoryHandle): Promise<void> {
  for await (const info of from.store.list(LEDGER_PREFIX)) {
    if (await to.store.head(info.key)) continue;
    const bytes = await readAll(await from.store.get(info.key));
    await to.store.put(info.key, bytes, { size: bytes.length });
  }
}
