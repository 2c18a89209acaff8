import { ConfigError } from '../config/config.ts';
import { DatabaseTlsError } from '../db/tls.ts';
import { MissingBinaryError } from '../embedded/binaries.ts';
import { scrub } from '../ops/logger.ts';

/** One sentence, secrets scrubbed; the stack only for errors nobody foresaw, and only with TRENDGEN_DEBUG. */
export function reportFailure(error: Error): void {
  const known =
    error instanceof ConfigError || error instanceof MissingBinaryError || error instanceof DatabaseTlsError;
  process.stderr.write(`trendgen: ${scrub(error.message ?? String(error))}\n`);
  if (!known && process.env.TRENDGEN_DEBUG) process.stderr.write(`${error.stack}\n`);
}
