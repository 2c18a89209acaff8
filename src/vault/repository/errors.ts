/** Base class, so callers can tell a repository problem from a programming error. */
export class RepositoryError extends Error {
  override name = 'RepositoryError';
}

export class RepositoryNotFoundError extends RepositoryError {
  override name = 'RepositoryNotFoundError';
  constructor(readonly location: string) {
    super(`There is no backup repository at ${location} (no config file): initialise one first.`);
  }
}

export class RepositoryExistsError extends RepositoryError {
  override name = 'RepositoryExistsError';
  constructor(
    readonly location: string,
    withoutConfig = false,
  ) {
    super(
      withoutConfig
        ? `The location ${location} holds backup data but no config: it was not initialised again, so that no existing blob is shadowed; restore its config or choose an empty location.`
        : `A backup repository already exists at ${location}: open it instead of initialising it again.`,
    );
  }
}

export class InvalidConfigError extends RepositoryError {
  override name = 'InvalidConfigError';
  constructor(
    readonly location: string,
    reason: string,
  ) {
    super(
      `The config of the backup repository at ${location} is unreadable (${reason}): copy the file config back from another backup target or from an earlier copy of this repository.`,
    );
  }
}

/** The config says (or cannot say) the repository is not encrypted, yet it holds encrypted files. */
export class EncryptionConfigLostError extends RepositoryError {
  override name = 'EncryptionConfigLostError';
  constructor(readonly location: string) {
    super(
      `The config of the backup repository at ${location} is damaged: it has no usable encryption section, yet the repository holds encrypted data, so nothing was read or written; keep BACKUP_PASSWORD as it is and copy the file config back from another backup target (its config wraps the same keys) or from an earlier copy of this repository.`,
    );
  }
}

export class UnsupportedFormatError extends RepositoryError {
  override name = 'UnsupportedFormatError';
  constructor(
    readonly location: string,
    readonly version: number,
  ) {
    super(
      `The backup repository at ${location} was written by a newer trendgen (format ${version}); upgrade trendgen.`,
    );
  }
}

export class WrongPasswordError extends RepositoryError {
  override name = 'WrongPasswordError';
  constructor(readonly location: string) {
    super(`The backup password is wrong for the repository at ${location}: check BACKUP_PASSWORD.`);
  }
}

export class PasswordRequiredError extends RepositoryError {
  override name = 'PasswordRequiredError';
  constructor(readonly location: string) {
    super(`The backup repository at ${location} is encrypted: set BACKUP_PASSWORD to open it.`);
  }
}

export class NotEncryptedError extends RepositoryError {
  override name = 'NotEncryptedError';
  constructor(readonly location: string) {
    super(
      `The backup repository at ${location} is not encrypted, yet a password was given: unset BACKUP_PASSWORD for it, or back up to a new, encrypted repository.`,
    );
  }
}

/** An unencrypted repository's records are authenticated with a key kept outside it, and none was given. */
export class KeyRequiredError extends RepositoryError {
  override name = 'KeyRequiredError';
  constructor(
    readonly location: string,
    legacy = false,
  ) {
    super(
      legacy
        ? `The backup repository at ${location} was written by an older trendgen, before records were authenticated: run trendgen backup once on the machine that wrote it (it gives the repository its key), or set BACKUP_KEY to that machine's key.`
        : `The backup repository at ${location} is not encrypted and authenticates its records with a key kept outside it: set BACKUP_KEY to the content of DATA_DIR/secrets/backup-key of the machine that wrote it.`,
    );
  }
}

export class WrongKeyError extends RepositoryError {
  override name = 'WrongKeyError';
  constructor(
    readonly location: string,
    readonly expected: string,
    readonly given: string,
  ) {
    super(
      `The backup repository at ${location} was written with the key ${expected}, not with this key (${given}): set BACKUP_KEY to the key of the machine that wrote it (DATA_DIR/secrets/backup-key there).`,
    );
  }
}

/** A stored blob that does not decrypt, decode or hash back to its name (I7). */
export class CorruptBlobError extends RepositoryError {
  override name = 'CorruptBlobError';
  constructor(
    readonly id: string,
    readonly location: string,
    readonly reason: string,
  ) {
    super(`The blob ${id} in ${location} is damaged (${reason}).`);
  }
}

export class MissingBlobError extends RepositoryError {
  override name = 'MissingBlobError';
  constructor(
    readonly id: string,
    readonly location: string,
  ) {
    super(`The blob ${id} is missing from ${location}.`);
  }
}

export class InvalidTreeError extends RepositoryError {
  override name = 'InvalidTreeError';
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`The tree ${id} is invalid and was refused: ${reason}.`);
  }
}

export class SnapshotNotFoundError extends RepositoryError {
  override name = 'SnapshotNotFoundError';
  constructor(
    readonly id: string,
    readonly location: string,
  ) {
    super(`There is no snapshot ${id} in ${location}.`);
  }
}

export class InvalidSnapshotError extends RepositoryError {
  override name = 'InvalidSnapshotError';
  constructor(
    readonly id: string,
    readonly location: string,
    readonly reason: string,
  ) {
    super(`The snapshot ${id} in ${location} is damaged or malformed (${reason}).`);
  }
}

export interface LockHolder {
  host: string;
  pid: number;
  exclusive: boolean;
  createdAt: string;
}

export class RepositoryLockedError extends RepositoryError {
  override name = 'RepositoryLockedError';
  constructor(
    readonly location: string,
    readonly holder: LockHolder,
  ) {
    const kind = holder.exclusive ? 'an exclusive' : 'a shared';
    super(
      `The backup repository at ${location} is locked: ${kind} lock is held by process ${holder.pid} on ${holder.host} since ${holder.createdAt}.`,
    );
  }
}

export class LockLostError extends RepositoryError {
  override name = 'LockLostError';
}

export interface DamagedFile {
  /** Path relative to the restore target, `/`-separated. */
  path: string;
  reason: string;
  /** The first blob that failed, when a blob was the cause. */
  blobId?: string;
}

/** Some entries could not be restored; everything else was written and is correct. */
export class RestoreIncompleteError extends RepositoryError {
  override name = 'RestoreIncompleteError';
  constructor(
    readonly damaged: DamagedFile[],
    readonly refused: DamagedFile[],
  ) {
    const list = [...damaged, ...refused];
    const shown = list
      .slice(0, 10)
      .map((f) => `${f.path} (${f.reason})`)
      .join('; ');
    const more = list.length > 10 ? `; and ${list.length - 10} more` : '';
    super(
      `The restore left out ${damaged.length} damaged and ${refused.length} refused entries rather than write wrong or unsafe data: ${shown}${more}.`,
    );
  }
}
