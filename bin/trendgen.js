#!/bin/sh
//bin/true 2>/dev/null; export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_-1048576}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX-2}"; exec node "$0" "$@"
// Runs the compiled CLI (dist/, built from src/ by `npm ci` and `npm run build`). Run as a program (`npx trendgen`,
// `bin/trendgen.js`), the shell runs the line above (to JavaScript a comment) and execs node with glibc's malloc
// settings of src/lib/allocator.ts unless the environment has its own: the C library reads them only when a
// process starts. `node bin/trendgen.js` skips that line and takes them from its environment as it is.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'trendgen: the program is not built (dist/cli/main.js is missing): run `npm run build`.\n',
  );
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
