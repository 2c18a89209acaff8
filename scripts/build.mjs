#!/usr/bin/env node
// Compiles the server (src/ → dist/, beside the console's dist/admin) so that every start runs plain
// JavaScript: no TypeScript loader, no compilation at start. The SQL migrations go along. The new output is
// written to a staging folder first and swapped in, then a stamp records what it was built from.
//   node scripts/build.mjs             build
//   node scripts/build.mjs --if-stale  build only when a source is newer than the last build
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const stamp = path.join(dist, '.server-built');
/** dist/ entries that belong to other builds. */
const KEEP = new Set(['admin']);

function newestChange(target) {
  const info = statSync(target);
  if (!info.isDirectory()) return info.mtimeMs;
  // A folder's own time changes when a file in it is removed or renamed.
  let newest = info.mtimeMs;
  for (const entry of readdirSync(target)) newest = Math.max(newest, newestChange(path.join(target, entry)));
  return newest;
}

function isStale() {
  if (!existsSync(stamp)) return true;
  const sources = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json'].map((p) =>
    path.join(root, p),
  );
  return Math.max(...sources.map(newestChange)) > statSync(stamp).mtimeMs;
}

if (process.argv.includes('--if-stale') && !isStale()) process.exit(0);

mkdirSync(dist, { recursive: true });
const staging = mkdtempSync(path.join(dist, '.server-'));
try {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const compiled = spawnSync(
    process.execPath,
    [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', staging],
    {
      stdio: 'inherit',
    },
  );
  if (compiled.status !== 0) {
    process.stderr.write('build: the TypeScript compiler failed (above); dist/ is unchanged.\n');
    process.exit(1);
  }
  cpSync(path.join(root, 'src/db/migrations'), path.join(staging, 'db/migrations'), { recursive: true });
  for (const entry of readdirSync(dist)) {
    if (!KEEP.has(entry) && !entry.startsWith('.'))
      rmSync(path.join(dist, entry), { recursive: true, force: true });
  }
  for (const entry of readdirSync(staging)) renameSync(path.join(staging, entry), path.join(dist, entry));
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
