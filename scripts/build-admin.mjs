#!/usr/bin/env node
// Builds the operator console (web/admin) into dist/admin: app.js, app.css, their source maps and index.html.
// Everything is written to a fresh folder beside dist/admin first and swapped in by renames, so the server
// never serves a half-built page.
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const target = path.join(dist, 'admin');

const INDEX_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>trendgen console</title>
    <link rel="stylesheet" href="./app.css">
    <script type="module" src="./app.js"></script>
  </head>
  <body>
    <div id="app"><noscript>The trendgen console needs JavaScript.</noscript></div>
  </body>
</html>
`;

mkdirSync(dist, { recursive: true });
const staging = mkdtempSync(path.join(dist, '.admin-'));
try {
  // mkdtemp makes it private; the server may run as another user than the one who built it (the image's node).
  chmodSync(staging, 0o755);
  const result = await build({
    entryPoints: { app: path.join(root, 'web/admin/main.tsx') },
    outdir: staging,
    bundle: true,
    minify: true,
    sourcemap: 'linked',
    target: 'es2020',
    format: 'esm',
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    // The page is served from /admin/ and fetches nothing from elsewhere: no remote fonts or images.
    loader: { '.woff': 'empty', '.woff2': 'empty', '.ttf': 'empty', '.png': 'empty', '.svg': 'empty' },
    legalComments: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
  writeFileSync(path.join(staging, 'index.html'), INDEX_HTML);
  const old = `${target}.old-${process.pid}`;
  try {
    renameSync(target, old);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  renameSync(staging, target);
  rmSync(old, { recursive: true, force: true });
  const sizes = Object.entries(result.metafile.outputs)
    .filter(([file]) => !file.endsWith('.map'))
    .map(([file, output]) => `${path.basename(file)} ${(output.bytes / 1024).toFixed(1)} KiB`);
  console.log(`dist/admin: ${sizes.join(', ')}`);
} catch (error) {
  rmSync(staging, { recursive: true, force: true });
  console.error(`The console could not be built: ${error.message}`);
  process.exit(1);
}
