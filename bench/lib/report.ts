import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Measurement } from './measure.ts';
import { median } from './measure.ts';
import type { ToolName } from './tools.ts';

export type StepName = 'backup1' | 'backup2' | 'restore';

export interface StepResult extends Omit<Measurement, 'stdout' | 'stderr'> {
  /** Growth of the backup folder during the step (backups only). */
  repoGrowthMb?: number;
  /** trendgen only: seconds per phase, from its progress lines. */
  phases?: Record<string, number>;
}

export interface RunResult {
  tool: ToolName;
  backup1: StepResult;
  backup2: StepResult;
  restore: StepResult;
  repoMb: number;
  /** Bytes that changed between the two backups (new images + edited prompts + plain dump growth). */
  changedMb: number;
}

export interface Environment {
  date: string;
  scale: string;
  runs: number;
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  kernel: string;
  versions: Record<string, string>;
  loadBefore: number[];
  loadAfter: number[];
  dataset: string;
  /** Anything that differs from a default run (fewer classic runs, extra trendgen settings). */
  notes: string[];
}

const STEP_TITLES: Record<StepName, string> = {
  backup1: 'First backup',
  backup2: 'Second backup (after a day’s change)',
  restore: 'Full restore (database + files)',
};

type Figure = {
  label: string;
  get: (r: RunResult) => number | undefined;
  digits: number;
  /** Show the spread over runs next to the median. */
  spread?: boolean;
};

function figures(step: StepName): Figure[] {
  const list: Figure[] = [
    { label: 'wall s', get: (r) => r[step].wallS, digits: 1, spread: true },
    { label: 'CPU s (user+sys)', get: (r) => r[step].cpuS, digits: 1 },
    { label: 'server CPU s', get: (r) => r[step].serverCpuS, digits: 1 },
    // How much of the machine's cores the step kept busy: the tool's processes and the servers it read from.
    {
      label: 'CPU/wall',
      get: (r) => {
        const { cpuS, serverCpuS, wallS } = r[step];
        return cpuS === undefined || !wallS ? undefined : (cpuS + (serverCpuS ?? 0)) / wallS;
      },
      digits: 2,
    },
    { label: 'peak RSS MB', get: (r) => r[step].maxRssMb, digits: 0 },
  ];
  if (step !== 'restore') list.push({ label: 'repo growth MB', get: (r) => r[step].repoGrowthMb, digits: 1 });
  list.push({ label: 'file writes MB', get: (r) => r[step].fsWriteMb, digits: 0 });
  return list;
}

const fmt = (n: number | undefined, digits: number) =>
  n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);

function cell(runs: RunResult[], figure: Figure): { text: string; value: number | undefined } {
  const values = runs.map(figure.get).filter((v): v is number => v !== undefined);
  if (!values.length) return { text: '–', value: undefined };
  const value = median(values);
  let text = fmt(value, figure.digits);
  if (figure.spread && values.length > 1) {
    text += ` (${fmt(Math.min(...values), figure.digits)}–${fmt(Math.max(...values), figure.digits)})`;
  }
  return { text, value };
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;

export function medianOf(runs: RunResult[], get: (r: RunResult) => number | undefined): number | undefined {
  const values = runs.map(get).filter((v): v is number => v !== undefined);
  return values.length ? median(values) : undefined;
}

export interface Target {
  name: string;
  value: number | undefined;
  limit: number;
  unit: string;
  met: boolean | undefined;
}

export function targets(results: Partial<Record<ToolName, RunResult[]>>): Target[] {
  const tg = results.trendgen;
  const rs = results.restic;
  const list: Target[] = [];
  const vsRestic = (name: string, step: StepName) => {
    const value =
      tg && rs ? medianOf(tg, (r) => r[step].wallS)! / medianOf(rs, (r) => r[step].wallS)! : undefined;
    list.push({
      name,
      value,
      limit: 0.8,
      unit: '× restic',
      met: value === undefined ? undefined : value <= 0.8,
    });
  };
  vsRestic('First backup wall time ≤ 0.8× restic', 'backup1');
  vsRestic('Second backup wall time ≤ 0.8× restic', 'backup2');
  vsRestic('Full restore wall time ≤ 0.8× restic', 'restore');
  const written = tg ? medianOf(tg, (r) => r.backup2.repoGrowthMb! / r.changedMb) : undefined;
  list.push({
    name: 'Second backup writes ≤ 1.5× the bytes that changed',
    value: written,
    limit: 1.5,
    unit: '× changed',
    met: written === undefined ? undefined : written <= 1.5,
  });
  const rss = tg
    ? Math.max(
        ...(['backup1', 'backup2', 'restore'] as const).map((s) => medianOf(tg, (r) => r[s].maxRssMb)!),
      )
    : undefined;
  list.push({
    name: 'Peak memory < 300 MB',
    value: rss,
    limit: 300,
    unit: 'MB',
    met: rss === undefined ? undefined : rss < 300,
  });
  return list;
}

/** The results as Markdown: the figures table with ratios, the targets, trendgen's phases. */
export function renderReport(
  env: Environment,
  results: Partial<Record<ToolName, RunResult[]>>,
  extra: string[] = [],
): string {
  const tools = (['classic', 'restic', 'trendgen'] as const).filter((t) => results[t]?.length);
  const out: string[] = [];
  out.push(`### Scale \`${env.scale}\`: ${env.dataset}`);
  out.push('');
  out.push(
    `${env.date}; ${env.cpus} CPUs (${env.cpuModel}), ${env.memoryGb.toFixed(0)} GB RAM, Linux ${env.kernel}; ` +
      `${env.runs === 1 ? 'one run' : `medians of ${env.runs} runs (wall time: median (min–max))`}; ` +
      `load average ${env.loadBefore.map((l) => l.toFixed(1)).join('/')} before, ${env.loadAfter
        .map((l) => l.toFixed(1))
        .join('/')} after (1/5/15 min). ` +
      Object.entries(env.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      '.' +
      env.notes.map((note) => ` ${note}`).join(''),
  );
  out.push('');
  const header = ['Step', 'Figure', ...tools];
  const withRatios = results.trendgen?.length;
  if (withRatios && results.restic?.length) header.push('trendgen/restic');
  if (withRatios && results.classic?.length) header.push('trendgen/classic');
  out.push(`| ${header.join(' | ')} |`);
  out.push(`|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
  const row = (title: string, figure: Figure) => {
    const cells = tools.map((t) => cell(results[t]!, figure));
    const value = (t: ToolName) => cells[tools.indexOf(t as (typeof tools)[number])]?.value;
    const line = [title, figure.label, ...cells.map((c) => c.text)];
    if (withRatios && results.restic?.length) line.push(ratio(value('trendgen'), value('restic')));
    if (withRatios && results.classic?.length) line.push(ratio(value('trendgen'), value('classic')));
    out.push(`| ${line.join(' | ')} |`);
  };
  const stepRows = (step: StepName) => {
    for (const [i, figure] of figures(step).entries()) row(i === 0 ? `**${STEP_TITLES[step]}**` : '', figure);
  };
  stepRows('backup1');
  stepRows('backup2');
  row('**Repository after both**', { label: 'size MB', get: (r) => r.repoMb, digits: 1 });
  stepRows('restore');
  const anyRuns = Object.values(results).find((r) => r?.length);
  if (anyRuns) {
    out.push('');
    out.push(
      `Bytes that changed between the two backups (new images + edited prompt files + growth of the plain dump): ` +
        `${fmt(
          medianOf(anyRuns, (r) => r.changedMb),
          1,
        )} MB.`,
    );
  }
  out.push('');
  out.push('| Target (issue 12) | trendgen | limit | |');
  out.push('|---|---:|---:|---|');
  for (const t of targets(results)) {
    const verdict = t.met === undefined ? 'not measured' : t.met ? '**met**' : '**missed**';
    const digits = t.unit === 'MB' ? 0 : 2;
    out.push(`| ${t.name} | ${fmt(t.value, digits)} ${t.unit} | ${t.limit} ${t.unit} | ${verdict} |`);
  }
  const tg = results.trendgen;
  if (tg?.length) {
    const steps = ['backup1', 'backup2', 'restore'] as const;
    const names = [...new Set(steps.flatMap((s) => tg.flatMap((r) => Object.keys(r[s].phases ?? {}))))];
    if (names.length) {
      out.push('');
      out.push(
        'trendgen, seconds per phase, from its progress lines. The last phase runs to the end of the ' +
          'backup (trees and the snapshot record included) or of the restore (the verification included); ' +
          '`startup+exit` is the wall time outside them: node and tsx start-up, configuration, migrations, ' +
          'opening the repository (restore), the run catalog, exit. Sources run side by side (backup and restore ' +
          'alike), so a phase counts until the next progress line of any phase, not its own whole duration.',
      );
      out.push('');
      out.push(`| Phase | ${steps.map((s) => STEP_TITLES[s].replace(/ \(.*\)$/, '')).join(' | ')} |`);
      out.push(`|---|${steps.map(() => '---:').join('|')}|`);
      for (const name of names) {
        const values = steps.map((s) => {
          const v = medianOf(tg, (r) => r[s].phases?.[name]);
          return v === undefined ? '' : v.toFixed(1);
        });
        out.push(`| ${name} | ${values.join(' | ')} |`);
      }
    }
  }
  for (const block of extra) out.push('', block.trimEnd());
  return `${out.join('\n')}\n`;
}

const START = (scale: string) => `<!-- bench:${scale}:start -->`;
const END = (scale: string) => `<!-- bench:${scale}:end -->`;

const DOC_HEADER = `# Backup benchmark: classic script, restic, trendgen

Produced by \`npx tsx bench/backup.ts --scale <small|full|files> --write-docs\`; the sections between the
\`bench:…\` markers are rewritten by each run of that scale, the rest of this file is written by hand.
`;

/** Replaces this scale's section of the document (creating the file or the section when missing). */
export function writeDocs(file: string, scale: string, section: string): void {
  const block = `${START(scale)}\n${section.trimEnd()}\n${END(scale)}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : `${DOC_HEADER}\n`;
  const start = text.indexOf(START(scale));
  const end = text.indexOf(END(scale));
  if (start >= 0 && end > start) text = text.slice(0, start) + block + text.slice(end + END(scale).length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}
