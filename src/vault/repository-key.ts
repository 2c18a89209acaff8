import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { writeFileAtomicSync } from '../lib/files.ts';

/**
 * The key an unencrypted repository's records are authenticated with (repository/auth.ts). It must not be in
 * the repository, or whoever can write there could tag their own records: BACKUP_KEY, else the file below,
 * made on the first backup. A snapshot never holds it; a restore onto a new machine needs BACKUP_KEY, as
 * an encrypted repository needs BACKUP_PASSWORD.
 */
export const BACKUP_KEY_FILE = 'backup-key';

export function backupKeyPath(config: Config): string {
  return path.join(config.dataDir, 'secrets', BACKUP_KEY_FILE);
}

export interface RepositoryAccess {
  password: string | undefined;
  authKey: Buffer | undefined;
}

/** BACKUP_PASSWORD and the authentication key; with `create`, the key file is made when there is none. */
export function repositoryAccess(config: Config, options: { create?: boolean } = {}): RepositoryAccess {
  const password = config.backup.password || undefined;
  if (config.backup.key) return { password, authKey: Buffer.from(config.backup.key, 'hex') };
  const file = backupKeyPath(config);
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(text)) {
      throw new Error(
        `${file} is not a backup key (64 hexadecimal characters): put back the original, or set BACKUP_KEY.`,
      );
    }
    return { password, authKey: Buffer.from(text, 'hex') };
  }
  if (!options.create || password) return { password, authKey: undefined };
  mkdirSync(path.dirname(file), { recursive: true });
  chmodSync(path.dirname(file), 0o700);
  const key = randomBytes(32);
  writeFileAtomicSync(file, `${key.toString('hex')}\n`, 0o600);
  return { password, authKey: key };
}
