import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { type BlobInfo, isValidKey } from './blobstore.ts';
import { isMissing } from './file-errors.ts';

const STAT_BATCH = 64;

/** Every blob under `root` whose key starts with `prefix`, in plain string order (as S3 lists); `fail` maps errors. */
export async function* listBlobs(
  root: string,
  prefix: string,
  fail: (error: unknown, key: string) => Error,
): AsyncGenerator<BlobInfo> {
  yield* walk(root, root, '', prefix, fail);
}

/** A blob's size and time; undefined when it is not there (or not a file). Other errors are thrown as they are. */
export async function statBlob(root: string, key: string): Promise<BlobInfo | undefined> {
  try {
    const info = await stat(path.join(root, ...key.split('/')));
    return info.isFile() ? { key, size: info.size, lastModified: info.mtime } : undefined;
  } catch (error) {
    // Deleted between readdir and stat: no longer part of the listing.
    if (isMissing(error)) return undefined;
    throw error;
  }
}

async function* walk(
  root: string,
  dir: string,
  keyPrefix: string,
  prefix: string,
  fail: (error: unknown, key: string) => Error,
): AsyncGenerator<BlobInfo> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return;
    throw fail(error, keyPrefix || prefix);
  }
  // Sorting a folder as "name/" yields keys in plain string order, as S3 does: "a-b" < "a/c" < "a0".
  const items = entries
    .filter((entry) => isValidKey(entry.name) && (entry.isFile() || entry.isDirectory()))
    .map((entry) => {
      const key = keyPrefix + entry.name;
      return { entry, key, order: entry.isDirectory() ? `${key}/` : key };
    })
    .filter(({ order }) => order.startsWith(prefix) || (order.endsWith('/') && prefix.startsWith(order)))
    .sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
  const infos = new Map<string, BlobInfo | undefined>();
  const files = items.filter(({ entry }) => entry.isFile());
  for (let i = 0; i < files.length; i += STAT_BATCH) {
    const batch = files.slice(i, i + STAT_BATCH);
    await Promise.all(
      batch.map(async ({ key }) =>
        infos.set(
          key,
          await statBlob(root, key).catch((error) => {
            throw fail(error, key);
          }),
        ),
      ),
    );
  }
  for (const { entry, key } of items) {
    if (entry.isDirectory()) yield* walk(root, path.join(dir, entry.name), `${key}/`, prefix, fail);
    else if (infos.get(key)) yield infos.get(key)!;
  }
}
