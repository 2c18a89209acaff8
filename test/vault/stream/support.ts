import type { Config } from '../../../src/config/config.ts';
import { sleep } from '../../../src/lib/process.ts';
import type { Repository } from '../../../src/vault/repository/index.ts';
import { streamedObjects } from '../../../src/vault/stream/objects-status.ts';
import { openRepository, resolveTargets } from '../../../src/vault/targets.ts';

/** The variables a `trendgen object-stream` child needs to serve this configuration. */
export function streamEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    DATABASE_URL: config.databaseUrl!,
    STORAGE_URL: config.storageUrl,
    DATA_DIR: config.dataDir,
    BACKUP_DIR: config.backup.dir,
    LOG_LEVEL: 'warn',
  };
  const pairs: Array<[string, string | undefined]> = [
    ['BACKUP_S3_URI', config.backup.s3Uri],
    ['BACKUP_PASSWORD', config.backup.password],
    ['S3_ENDPOINT', config.s3.endpoint],
    ['AWS_ACCESS_KEY_ID', config.s3.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', config.s3.secretAccessKey],
  ];
  for (const [key, value] of pairs) if (value) env[key] = value;
  return env;
}

/** The repository on a target, once the streamer has created it. */
export async function waitForRepository(
  config: Config,
  name: string,
  timeoutMs = 20_000,
): Promise<Repository> {
  const target = resolveTargets(config, [name])[0]!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await openRepository(target, config);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/** Polls the repository's journal until it names every key; the time that took. */
export async function waitForStreamed(repo: Repository, keys: string[], timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const streamed = await streamedObjects(repo);
    if (keys.every((key) => streamed.has(key))) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${keys.filter((k) => !streamed.has(k)).length} object(s) not streamed to ${repo.location}`,
      );
    }
    await sleep(10);
  }
}

/** Polls until `probe` is true. */
export async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await sleep(intervalMs);
  }
}
