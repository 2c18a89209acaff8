import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Settings } from '../config/config.ts';
import { assertValidKey, type BlobStore, BlobStoreError } from './blobstore.ts';
import { FileBlobStore } from './file.ts';
import { S3BlobStore } from './s3.ts';

export * from './blobstore.ts';
export { FileBlobStore } from './file.ts';
export { S3BlobStore, type S3BlobStoreOptions } from './s3.ts';

/**
 * Opens the store a URL names: `file:///absolute/dir`, `file://relative/dir` (against the working
 * directory) or `s3://bucket/optional/prefix` (reached with the given S3 settings).
 */
export function createBlobStore(url: string, s3: S3Settings, options: { setting?: string } = {}): BlobStore {
  if (url.startsWith('file://')) {
    const rest = url.slice('file://'.length).replace(/^localhost\//, '/');
    if (!rest) throw unsupported(url, 'it names no directory');
    const dir = rest.startsWith('/')
      ? fileURLToPath(`file://${rest}`)
      : path.resolve(decodeURIComponent(rest));
    return new FileBlobStore(dir, options);
  }
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket))
      throw unsupported(url, 'it names no valid bucket');
    if (prefix) {
      try {
        assertValidKey(prefix);
      } catch {
        throw unsupported(url, 'its prefix must be folders of [A-Za-z0-9._-] not starting with a dot');
      }
    }
    return new S3BlobStore({ bucket, prefix, settings: s3 });
  }
  throw unsupported(url, 'use file:///absolute/dir, file://relative/dir or s3://bucket/prefix');
}

function unsupported(url: string, why: string): BlobStoreError {
  // A URL with user:password@ must not end up in logs.
  const shown = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, '$1***@');
  return new BlobStoreError(`The storage URL ${shown} is not supported: ${why}.`);
}
