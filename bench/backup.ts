/**
 * Backup benchmark (issue 4, "Performance"): the classic script, restic and `trendgen backup` on one
 * dataset like the service's, on this machine, in one run. Not a test: it never fails on time.
 *
 *   npx tsx bench/backup.ts [--scale small|full|files] [--runs N] [--tools classic,restic,trendgen]
 *                           [--classic-runs N] [--profile] [--write-docs]
 *                           [--keep] [--verbose] [--trendgen-env NAME=value]
 *
 * --scale small (default): 100k rows, 50 prompts, 400 images (~200 MB); full: 1M rows, 200 prompts,
 * 4,000 images (~2 GB); files: 3M rows, 200 prompts, 40,000 images of 10–50 KB (many small files). --runs: medians of N runs (default 1 for small, 3 for full). --profile: one more
 * trendgen pass under `node --cpu-prof`, summarised. --write-docs: the report also goes to
 * docs/benchmarks.md (this scale's section). --keep: leave the temp folder; --verbose: show each step's
 * output (both for debugging). --trendgen-env NAME=value (repeatable): run trendgen with this variable
 * too, to measure a setting (e.g. UV_THREADPOOL_SIZE=16) against the same baseline. --classic-runs N:
 * measure the classic script in the first N runs only (it takes minutes per backup and barely varies).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import {
  applyDayChange,
  createDataset,
  type Dataset,
  type DayChange,
  revertDayChange,
  SCALES,
} from './lib/dataset.ts';
import { killRunningSteps, measure, treeBytes } from './lib/measure.ts';
import { formatProfile, mainThreadProfile, summarizeProfile } from './lib/profile.ts';
import {
  type Environment,
  type RunResult,
  renderReport,
  type StepName,
  type StepResult,
  writeDocs,
} from './lib/report.ts';
import { makeTools, PROJECT_ROOT, TOOL_NAMES, type Tool, type ToolName, trendgenTool } from './lib/tools.ts';

const MB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: 'small' },
    runs: { type: 'string' },
    'classic-runs': { type: 'string' },
    tools: { type: 'string', default: TOOL_NAMES.join(',') },
    profile: { type: 'boolean', default: false },
    'write-docs': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'trendgen-env': { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});

const scale = SCALES[args.scale as keyof typeof SCALES];
if (!scale) {
  process.stderr.write(`--scale takes small, full or files, not ${args.scale}.\n`);
  process.exit(2);
}
const runs = Number(args.runs ?? (scale.name === 'small' ? 1 : 3));
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`--runs takes a whole number >= 1, not ${args.runs}.\n`);
  process.exit(2);
}
const classicRuns = Number(args['classic-runs'] ?? runs);
if (!Number.isInteger(classicRuns) || classicRuns < 1 || classicRuns > runs) {
  process.stderr.write(
    `--classic-runs takes a whole number from 1 to --runs, not ${args['classic-runs']}.\n`,
  );
  process.exit(2);
}
const toolNames = args.tools.split(',').filter(Boolean) as ToolName[];
const unknownTools = toolNames.filter((t) => !TOOL_NAMES.includes(t));
if (unknownTools.length || !toolNames.length) {
  process.stderr.write(`--tools takes ${TOOL_NAMES.join(', ')}; not ${unknownTools.join(', ')}.\n`);
  process.exit(2);
}

const trendgenEnv: Record<string, string> = {};
for (const pair of args['trendgen-env']) {
  const eq = pair.indexOf('=');
  if (eq < 1) {
    process.stderr.write(`--trendgen-env takes NAME=value, not ${pair}.\n`);
    process.exit(2);
  }
  trendgenEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
}

const started = Date.now();
const log = (message: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s] ${message}\n`);

function version(command: string, argv: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(command, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? out.trim().split('\n')[0]!;
  } catch {
    return 'missing';
  }
}

/**
 * Seconds per phase of a trendgen backup or restore, from the `[  1.2s] phase: detail` lines it prints
 * when stderr is not a terminal (one per phase) and its closing `took 5.1 s` / `… in 3.8 s;` line. The
 * last phase runs until that total, so it includes writing the snapshot (backup) or the verification
 * (restore).
 */
function parsePhases(output: string, wallS: number): Record<string, number> | undefined {
  const events: Array<{ key: string; t: number }> = [];
  let total: number | undefined;
  for (const line of output.split('\n')) {
    const m = /^\[\s*([\d.]+)s\] ([a-z]+)(?:: (.*))?$/.exec(line);
    if (m) {
      const key = m[2] === 'postgres' || m[2] === 'redis' ? `${m[2]} ${m[3] ?? ''}`.trim() : m[2]!;
      if (events.at(-1)?.key !== key) events.push({ key, t: Number(m[1]) });
      continue;
    }
    const done = /took ([\d.]+) s$/.exec(line) ?? / in ([\d.]+) s;/.exec(line);
    if (done) total = Number(done[1]);
  }
  if (!events.length || total === undefined) return undefined;
  const phases: Record<string, number> = { 'open repository, lock, parent': events[0]!.t };
  for (const [i, event] of events.entries()) {
    const end = events[i + 1]?.t ?? total;
    phases[event.key] = (phases[event.key] ?? 0) + end - event.t;
  }
  phases['startup+exit'] = Math.max(0, wallS - total);
  return phases;
}

interface Context {
  root: string;
  ds?: Dataset;
  partial: Partial<Dataset>;
}

async function runStep(ds: Dataset, tool: Tool, step: StepName): Promise<StepResult> {
  // What the step before left unwritten (restic fsyncs nothing it restores, and the dataset's own changes) is
  // written back now, not during this step: a step that ends with syncfs would otherwise wait for it. The
  // server's share too: a restore's gigabytes of WAL leave a spread checkpoint running into the next step.
  const admin = postgres(ds.adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin`checkpoint`;
  } finally {
    await admin.end({ timeout: 5 });
  }
  execFileSync('sync');
  if (step === 'restore') await sleep(Math.max(0, discardedAt + FREED_INODE_WAIT_MS - Date.now()));
  const spec = step === 'restore' ? tool.restore() : tool.backup();
  const before = step === 'restore' ? 0 : treeBytes(tool.repoDir).bytes;
  const m = await measure(`${tool.name} ${step}`, spec.script, {
    ...spec,
    serverPid: ds.pgPid,
    timeFile: path.join(ds.root, 'tmp', `time-${tool.name}-${step}.txt`),
  });
  const { stdout, stderr, ...figures } = m;
  if (args.verbose) process.stderr.write(`${stdout}${stderr}`);
  const result: StepResult = { ...figures };
  if (step !== 'restore') result.repoGrowthMb = (treeBytes(tool.repoDir).bytes - before) / MB;
  if (tool.name === 'trendgen') {
    const phases = parsePhases(`${stderr}\n${stdout}`, m.wallS);
    if (phases) result.phases = phases;
  }
  log(
    `  ${tool.name.padEnd(8)} ${step.padEnd(8)} ${m.wallS.toFixed(1).padStart(6)} s wall, ${m.cpuS.toFixed(1)} s CPU, ` +
      `${m.maxRssMb.toFixed(0)} MB RSS${result.repoGrowthMb !== undefined ? `, +${result.repoGrowthMb.toFixed(1)} MB` : ''}`,
  );
  return result;
}

/** Checks that a restore brought everything back (rows, image files and bytes) and drops its database. */
async function checkRestore(ds: Dataset, tool: Tool, change: DayChange): Promise<void> {
  const url = new URL(ds.adminUrl);
  url.pathname = `/${tool.restoreDb}`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  let rows: number;
  let objects: number;
  try {
    const [r] = await sql<{ n: string }[]>`select count(*)::text as n from bench_generations`;
    const [o] = await sql<{ n: string }[]>`select count(*)::text as n from objects`;
    rows = Number(r!.n);
    objects = Number(o!.n);
  } finally {
    await sql.end({ timeout: 5 });
  }
  let files = 0;
  let bytes = 0;
  for (const dir of tool.restoredImagesDirs()) {
    const found = treeBytes(dir, '.jpg');
    files += found.files;
    bytes += found.bytes;
  }
  const wantRows = change.rowsTo;
  const wantFiles = ds.images.length + change.images.length;
  const wantBytes = ds.imageBytes + change.images.reduce((s, i) => s + i.size, 0);
  const admin = postgres(ds.adminUrl, { max: 1, onnotice: () => {} });
  try {
    // At once: left standing, the restored table is vacuumed (every page written again) during the next restore.
    await admin.unsafe(`drop database if exists ${tool.restoreDb} with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  if (rows !== wantRows || objects !== wantFiles || files !== wantFiles || bytes !== wantBytes) {
    throw new Error(
      `${tool.name} restored ${rows} rows, ${objects} object rows, ${files} image files (${bytes} bytes); expected ${wantRows}, ${wantFiles}, ${wantFiles} (${wantBytes} bytes).`,
    );
  }
}

/**
 * ext4 without a journal (this machine's disk) skips inodes freed in the last 60 s when it allocates one, so a
 * restore that ran soon after another's files were deleted paid for it (an objects-only restore: 12.3 s of CPU
 * against 7-8 s into a fresh place; at full scale the next run's first restore took 16.3 s against 12.1 s).
 */
const FREED_INODE_WAIT_MS = 65_000;
let discardedAt = 0;

/** Removes the files a run's restores wrote, once every tool has restored; the next restore waits out FREED_INODE_WAIT_MS. */
function discardRestores(tools: Tool[]): void {
  for (const tool of tools) rmSync(tool.restoreDir, { recursive: true, force: true });
  discardedAt = Date.now();
}

/** Stats of the newest trendgen snapshot (untimed). */
function trendgenStats(tool: Tool): unknown {
  const spec = tool.backup();
  const out = execFileSync('node', [path.join(PROJECT_ROOT, 'bin', 'trendgen.js'), 'snapshots', '--json'], {
    cwd: spec.cwd,
    env: spec.env,
    encoding: 'utf8',
  });
  return (JSON.parse(out) as { snapshots: Array<{ stats: unknown }> }).snapshots[0]?.stats;
}

function describeStats(stats: unknown): string {
  const s = stats as Record<string, Record<string, number>>;
  const mb = (n: number | undefined) => ((n ?? 0) / MB).toFixed(1);
  const parts: string[] = [];
  for (const source of ['postgres', 'redis', 'prompts']) {
    const x = s[source];
    if (!x) continue;
    parts.push(
      `${source}: ${x.filesNew ?? 0} new/${x.filesChanged ?? 0} changed/${x.filesUnchanged ?? 0} unchanged files, ` +
        `${mb(x.bytesRead)} MB read, ${x.blobsAdded ?? 0} blobs (${mb(x.bytesAdded)} MB) added`,
    );
  }
  const o = s.objects;
  if (o) {
    parts.push(
      `objects: ${o.objects} live, ${o.reused} reused by key, ${o.read} read (${mb(o.bytesRead)} MB), ` +
        `${o.blobsAdded} blobs (${mb(o.bytesAdded)} MB) added`,
    );
  }
  return parts.join('; ');
}

async function main(ctx: Context): Promise<void> {
  const loadBefore = os.loadavg();
  log(`scale ${scale.name}, ${runs} run(s), tools ${toolNames.join(', ')}, temp folder ${ctx.root}`);
  const ds = await createDataset(ctx.root, scale, log, (p) => Object.assign(ctx.partial, p));
  ctx.ds = ds;
  const datasetLine =
    `${(ds.imageBytes / 1024 ** 3).toFixed(2)} GiB of images in ${ds.images.length.toLocaleString('en')} files, ` +
    `${ds.promptFiles.length} prompts, ${ds.rows.toLocaleString('en')} generation rows ` +
    `(plain dump ${(ds.baseDumpBytes / MB).toFixed(0)} MB), ${scale.redisJobs.toLocaleString('en')} Redis queue entries`;
  log(`dataset: ${datasetLine}`);
  const tools = makeTools(ds, toolNames, trendgenEnv);
  // tsx transpiles the CLI on first use and caches it: warm that cache outside the measurements.
  execFileSync('node', [path.join(PROJECT_ROOT, 'bin', 'trendgen.js'), '--version'], { stdio: 'ignore' });

  const results: Partial<Record<ToolName, RunResult[]>> = {};
  const stats: string[] = [];
  for (let run = 0; run < runs; run++) {
    // The order rotates, so no tool always runs first (or right after the dataset was written).
    const order = tools
      .map((_, i) => tools[(i + run) % tools.length]!)
      .filter((tool) => tool.name !== 'classic' || run < classicRuns);
    log(`run ${run + 1}/${runs}: ${order.map((t) => t.name).join(', ')}`);
    const partial = new Map<ToolName, Partial<RunResult>>();
    for (const tool of order) {
      tool.reset();
      mkdirSync(tool.repoDir, { recursive: true });
      partial.set(tool.name, { tool: tool.name, backup1: await runStep(ds, tool, 'backup1') });
    }
    log('  applying a day’s change');
    const change = await applyDayChange(ds);
    for (const tool of order) {
      const r = partial.get(tool.name)!;
      r.backup2 = await runStep(ds, tool, 'backup2');
      r.repoMb = treeBytes(tool.repoDir).bytes / MB;
      r.changedMb = change.changedBytes / MB;
      if (tool.name === 'trendgen') stats.push(describeStats(trendgenStats(tool)));
    }
    for (const tool of order) {
      mkdirSync(tool.restoreDir, { recursive: true });
      partial.get(tool.name)!.restore = await runStep(ds, tool, 'restore');
      await checkRestore(ds, tool, change);
    }
    discardRestores(order);
    await revertDayChange(ds, change);
    for (const tool of order) {
      tool.reset();
      const list = results[tool.name] ?? [];
      list.push(partial.get(tool.name) as RunResult);
      results[tool.name] = list;
    }
  }

  const extra: string[] = [];
  if (stats.length) {
    extra.push(`trendgen's second snapshot (run 1), from \`trendgen snapshots --json\`: ${stats[0]}.`);
  }
  if (args.profile) {
    // A failed profile pass must not cost the figures already measured.
    extra.push(await profilePass(ds).catch((error) => `Profile pass failed: ${(error as Error).message}`));
  }

  const env: Environment = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    scale: scale.name,
    runs,
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    memoryGb: os.totalmem() / 1024 ** 3,
    kernel: os.release(),
    versions: {
      node: process.version,
      PostgreSQL: version('pg_dump', ['--version'], /(\d+\.\d+)/),
      restic: version('restic', ['version'], /restic (\S+)/),
      gzip: version('gzip', ['--version'], /gzip (\S+)/),
      tar: version('tar', ['--version'], /tar\) (\S+)/),
    },
    loadBefore,
    loadAfter: os.loadavg(),
    dataset: datasetLine,
    notes: [
      ...(classicRuns < runs && toolNames.includes('classic')
        ? [`The classic script was measured in ${classicRuns} of the ${runs} runs.`]
        : []),
      ...(Object.keys(trendgenEnv).length
        ? [
            `trendgen ran with ${Object.entries(trendgenEnv)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}.`,
          ]
        : []),
    ],
  };
  const report = renderReport(env, results, extra);
  process.stdout.write(`\n${report}`);
  if (args['write-docs']) {
    const file = path.join(PROJECT_ROOT, 'docs', 'benchmarks.md');
    writeDocs(file, scale.name, report);
    log(`wrote ${path.relative(PROJECT_ROOT, file)}`);
  }
}

/** One more trendgen pass under `node --cpu-prof`: where the main thread's time goes in each step. */
async function profilePass(ds: Dataset): Promise<string> {
  log('profile pass (trendgen under --cpu-prof)');
  const blocks: string[] = [
    '#### Where trendgen’s time goes (`--profile`: one more pass under `node --cpu-prof`)',
    '',
  ];
  const dirs = { backup1: '', backup2: '', restore: '' } as Record<StepName, string>;
  const toolFor = (step: StepName) => {
    dirs[step] = path.join(ds.root, 'profiles', step);
    mkdirSync(dirs[step], { recursive: true });
    return trendgenTool(ds, ['--cpu-prof', `--cpu-prof-dir=${dirs[step]}`], trendgenEnv);
  };
  const first = toolFor('backup1');
  first.reset();
  mkdirSync(first.repoDir, { recursive: true });
  const results: Partial<Record<StepName, StepResult>> = {};
  results.backup1 = await runStep(ds, first, 'backup1');
  const change = await applyDayChange(ds);
  results.backup2 = await runStep(ds, toolFor('backup2'), 'backup2');
  const restoreTool = toolFor('restore');
  mkdirSync(restoreTool.restoreDir, { recursive: true });
  results.restore = await runStep(ds, restoreTool, 'restore');
  await checkRestore(ds, restoreTool, change);
  discardRestores([restoreTool]);
  await revertDayChange(ds, change);
  first.reset();
  for (const step of ['backup1', 'backup2', 'restore'] as const) {
    const file = mainThreadProfile(dirs[step]);
    if (!file) continue;
    const r = results[step]!;
    blocks.push(
      formatProfile(
        `${step === 'backup1' ? 'First backup' : step === 'backup2' ? 'Second backup' : 'Restore'}: ` +
          `${r.wallS.toFixed(1)} s wall, ${r.cpuS.toFixed(1)} s CPU (all processes)`,
        summarizeProfile(file),
      ),
    );
  }
  return blocks.join('\n');
}

async function cleanup(ctx: Context): Promise<void> {
  killRunningSteps();
  const { sql, postgres: pg, redis } = ctx.partial;
  await sql?.end({ timeout: 5 }).catch(() => {});
  await Promise.all([pg?.stop().catch(() => {}), redis?.stop().catch(() => {})]);
  if (args.keep) log(`kept ${ctx.root}`);
  else rmSync(ctx.root, { recursive: true, force: true });
}

const ctx: Context = {
  root: mkdtempSync(path.join(os.tmpdir(), 'trendgen-bench-')),
  partial: {},
};
// The unprivileged postgres user must be able to enter it when this runs as root.
chmodSync(ctx.root, 0o755);
let cleaning: Promise<void> | undefined;
const cleanOnce = () => {
  cleaning ??= cleanup(ctx);
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping and cleaning up`);
    void cleanOnce().finally(() => process.exit(130));
  });
}
try {
  await main(ctx);
} catch (error) {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  await cleanOnce();
}
