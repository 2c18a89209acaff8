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

const cases: Array<{ name: string; argv: string[] }> = [
  { name: 'node -e 0 (baseline)', argv: ['-e', '0'] },
  { name: 'trendgen --help', argv: [CLI, '--help'] },
  { name: 'trendgen backup --help', argv: [CLI, 'backup', '--help'] },
  { name: 'trendgen config', argv: [CLI, 'config'] },
];

const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), '--if-stale'], {
  stdio: 'inherit',
});
if (build.status !== 0) throw new Error('the build failed');

const seconds = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (let run = 0; run < runs + 1; run++) {
  for (const c of cases) {
    const started = process.hrtime.bigint();
    const result = spawnSync(process.execPath, c.argv, { cwd: ROOT, stdio: 'ignore' });
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
  'The CLI runs compiled JavaScript from `dist/` and loads only the command being run: `--help` loads no command at',
  'all, `backup --help` loads the backup command and everything it uses, `config` also reads the configuration.',
  '',
  'Rerun: `npx tsx bench/startup.ts --write-docs`',
);
const report = lines.join('\n');
process.stdout.write(`${report}\n`);
if (args['write-docs']) writeDocs(path.join(ROOT, 'docs/benchmarks.md'), 'startup', report);
