import type { MessagePort } from 'node:worker_threads';
import { parentPort, workerData } from 'node:worker_threads';
import { filesIn, type OpenDumpFile, PIECE_SIZE } from './postgres-copy-lanes.ts';
import { pullFiles } from './postgres-dump-feed.ts';
import type { Loader } from './postgres-loader.ts';
import type { TableDataManifest } from './postgres-ranges.ts';
import { loadStreamed } from './postgres-stream-load.ts';

/**
 * Loads a dump (loadStreamed) on a thread of its own: a restore's main thread writes the objects meanwhile,
 * and feeding the COPY connections from it slowed both (full scale: 15.1 s against 10.3 s for the whole restore).
 * The dump's files come from a folder, or from the main thread as it reads them from the repository.
 */
const { archive, dir, feed, loader, scratch, jobs, ranges } = workerData as {
  archive: string;
  dir: string | undefined;
  feed: MessagePort | undefined;
  loader: Pick<Loader, 'url' | 'role'>;
  scratch: string;
  jobs: number;
  ranges: TableDataManifest | undefined;
};

/** A repository's chunks are cut to PIECE_SIZE, as a folder's reads are, so rows are dealt out between lanes evenly. */
function inPieces(open: OpenDumpFile): OpenDumpFile {
  return async function* pieces(name) {
    for await (const chunk of open(name)) {
      for (let at = 0; at < chunk.length; at += PIECE_SIZE) yield chunk.subarray(at, at + PIECE_SIZE);
    }
  };
}

const open = feed ? inPieces(pullFiles(feed)) : filesIn(dir!);

const withRanges = ranges ? { manifest: ranges, open } : undefined;

loadStreamed(open(archive), loader, scratch, { jobs, ranges: withRanges }).then(
  (result) => parentPort!.postMessage({ result }),
  (error: Error) => parentPort!.postMessage({ error: { name: error.name, message: error.message } }),
);
