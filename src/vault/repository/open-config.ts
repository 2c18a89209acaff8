import { BlobNotFoundError, type BlobStore, readAll } from '../../blobstore/index.ts';
import { holdsEncryptedData } from './encryption-probe.ts';
import { EncryptionConfigLostError, InvalidConfigError, RepositoryNotFoundError } from './errors.ts';
import { CONFIG_KEY, type ConfigFile, parseConfig } from './format.ts';

/**
 * A repository's `config`, parsed. A config that lost its encryption section (or does not parse) over data
 * that looks encrypted is refused as damaged: such a repository must never be opened, or written, as plaintext.
 */
export async function readRepositoryConfig(store: BlobStore): Promise<ConfigFile> {
  let bytes: Buffer;
  try {
    bytes = await readAll(await store.get(CONFIG_KEY));
  } catch (error) {
    if (error instanceof BlobNotFoundError) throw new RepositoryNotFoundError(store.location);
    throw error;
  }
  let config: ConfigFile;
  try {
    config = parseConfig(bytes, store.location);
  } catch (error) {
    if (error instanceof InvalidConfigError && (await holdsEncryptedData(store)))
      throw new EncryptionConfigLostError(store.location);
    throw error;
  }
  if (!config.encryption && (await holdsEncryptedData(store)))
    throw new EncryptionConfigLostError(store.location);
  return config;
}
