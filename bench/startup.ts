/**
 * How long the CLI takes to start, next to a bare `node -e 0` measured in the same run (interleaved, so a
 * busy moment of the machine hits both alike). Never fails on time.
 *
 *   npx tsx bench/startup.ts [--runs N] [--write-docs]
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './lib/measure.ts';
import { writeDocs } from './lib/report.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CLI = path.join(ROOT, 'bin/trendgen.js');

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '15' }, 'write-docs': { type: 'boolean', default: false } },
});
const runs = Number(args.runs);

// The CLI as `npx trendgen` runs it: the program itself, whose shell line sets the allocator's settings and
// execs node (same process); `node bin/trendgen.js` beside it skips that line.
const cases: Array<{ name: string; command: string; argv: string[] }> = [
  { name: 'node -e 0 (baseline)', command: process.execPath, argv: ['-e', '0'] },
  { name: 'trendgen --help', command: CLI, argv: ['--help'] },
  { name: 'node bin/trendgen.js --help', command: process.execPath, argv: [CLI, '--help'] },
  { name: 'trendgen backup --help', command: CLI, argv: ['backup', '--help'] },
  { name: 'trendgen restore --help', command: CLI, argv: ['restore', '--help'] },
  { name: 'trendgen config', command: CLI, argv: ['config'] },
];

const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), '--if-stale'], {
  stdio: 'inherit',
});
if (build.status !== 0) throw new Error('the build failed');

const seconds = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (let run = 0; run < runs + 1; run++) {
  for (const c of cases) {
    const started = process.hrtime.bigint();
    const result = spawnSync(c.command, c.argv, {
      cwd: ROOT,
      stdio: 'ignore',
      // The program's shell line finds node on PATH: the one running this bench.
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    if (result.status !== 0) throw new Error(`${c.name} exited with ${result.status}`);
    // The first round warms the page cache for every case alike and is not counted.
    if (run > 0) seconds.get(c.name)!.push(elapsed);
  }
}

const baseline = median(seconds.get(cases[0]!.name)!);
const lines = [
  '<!-- written by bench/startup.ts -->',
  '## CLI start-up (`bench/startup.ts`)',
  '',
  `${new Date().toISOString().slice(0, 19)}Z; ${os.cpus().length} CPUs, node ${process.version}, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ')}; ${runs} runs per case, interleaved, after one uncounted round.`,
  '',
  '| Command | median s | min–max s | over `node -e 0` s |',
  '|---|---:|---:|---:|',
];
for (const c of cases) {
  const values = seconds.get(c.name)!;
  const m = median(values);
  lines.push(
    `| \`${c.name}\` | ${m.toFixed(3)} | ${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)} | ${
      c === cases[0] ? '–' : `+${(m - baseline).toFixed(3)}`
    } |`,
  );
}
lines.push(
  '',
  '`trendgen …` rows run `bin/trendgen.js` as a program, as `npx trendgen` does (its first line is a shell line that',
  "sets glibc's malloc settings and execs node in the same process); `node bin/trendgen.js` skips that line.",
  'The CLI runs compiled JavaScript from `dist/` and loads only the command being run: `--help` loads no command at',
  'all, `backup --help` loads the backup command and everything it uses, `config` also reads the configuration.',
  'The S3 SDK and libvips (sharp) load only when a command reaches an S3 store or decodes an image.',
  '',
  'Rerun: `npx tsx bench/startup.ts --write-docs`',
);
const report = lines.join('\n');
process.stdout.write(`${report}\n`);
if (args['write-docs']) writeDocs(path.join(ROOT, 'docs/benchmarks.md'), 'startup', report);
