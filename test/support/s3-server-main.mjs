// Child entry for test/support/s3-server.ts: runs s3rver in its own process because it needs
// `--openssl-legacy-provider` (its continuation tokens use DES) and must not share the test's event loop.
// argv: <data directory> <bucket>...; prints one JSON line {"port":N} once listening.
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  // HTTPS when the parent gives a certificate (S3_CA_FILE's tests).
  ...(process.env.S3RVER_TLS_CERT
    ? { cert: readFileSync(process.env.S3RVER_TLS_CERT), key: readFileSync(process.env.S3RVER_TLS_KEY) }
    : {}),
});

const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);

// The parent keeps our stdin open; when it dies without calling stop(), stdin ends and we go too,
// taking the data directory with us since nobody else will.
process.stdin.resume();
process.stdin.on('end', () => {
  rmSync(directory, { recursive: true, force: true });
  process.exit(0);
});
process.on('SIGTERM', () => process.exit(0));
