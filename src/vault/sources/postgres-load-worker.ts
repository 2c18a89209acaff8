import { createReadStream } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { Loader } from './postgres-loader.ts';
import type { TableDataManifest } from './postgres-ranges.ts';
import { loadStreamed } from './postgres-stream-load.ts';

/**
 * Loads a dump file (loadStreamed) on a thread of its own: a restore's main thread writes the objects meanwhile,
 * and feeding the COPY connections from it slowed both (full scale: 15.1 s against 10.3 s for the whole restore).
 */
const { archive, loader, scratch, jobs, ranges } = workerData as {
  archive: string;
  loader: Pick<Loader, 'url' | 'role'>;
  scratch: string;
  jobs: number;
  ranges: TableDataManifest | undefined;
};

loadStreamed(createReadStream(archive, { highWaterMark: 1 << 20 })[Symbol.asyncIterator](), loader, scratch, {
  jobs,
  ranges,
}).then(
  (result) => parentPort!.postMessage({ result }),
  (error: Error) => parentPort!.postMessage({ error: { name: error.name, message: error.message } }),
);
