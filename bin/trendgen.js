#!/usr/bin/env node
// Runs the compiled CLI (dist/, built from src/ by `npm ci` and `npm run build`).
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
