/** A file system error on a blob as one plain sentence that says what to do; undefined when there is none. */
export function fsSentence(
  err: NodeJS.ErrnoException,
  key: string,
  root: string,
  location: string,
  setting: string,
) {
  const elsewhere = `or move ${setting} elsewhere`;
  switch (err.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `The disk under ${root} is full: free space ${elsewhere}.`;
    case 'EACCES':
    case 'EPERM':
      return `Permission denied on ${err.path ?? root}: let the user running trendgen read and write it, ${elsewhere}.`;
    case 'EROFS':
      return `The filesystem under ${root} is read-only: remount it read-write ${elsewhere}.`;
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENOTEMPTY':
      return `The key ${key} clashes with another blob in ${location}: a key cannot be both a blob and a folder of blobs.`;
  }
  return err.syscall ? `Could not access ${key} in ${location}: ${err.message}.` : undefined;
}

export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Nothing under the key, or a folder: a prefix of other keys, not a blob. */
export function isNotABlob(error: unknown): boolean {
  return isMissing(error) || (error as NodeJS.ErrnoException).code === 'EISDIR';
}
