import type { RunResult } from './report.ts';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** One scenario's row as docs/reliability.md holds it: its cells after the name, its seeds, its run's date. */
export interface ReportRow {
  scenario: string;
  runs: number;
  acknowledged: number;
  lost: number;
  corrupted: number;
  recoveryMedian: string;
  recoveryMax: string;
  date: string;
  seeds: string;
}

function rowsOf(results: RunResult[], date: string): ReportRow[] {
  const byScenario = new Map<string, RunResult[]>();
  for (const result of results) {
    const list = byScenario.get(result.scenario) ?? [];
    list.push(result);
    byScenario.set(result.scenario, list);
  }
  return [...byScenario].map(([scenario, runs]) => {
    const sum = (pick: (r: RunResult) => number) => runs.reduce((total, r) => total + pick(r), 0);
    const recovery = runs.map((r) => r.recoveryMs);
    return {
      scenario,
      runs: runs.length,
      acknowledged: sum((r) => r.acknowledged),
      lost: sum((r) => r.lost),
      corrupted: sum((r) => r.corrupted),
      recoveryMedian: seconds(median(recovery)),
      recoveryMax: seconds(Math.max(...recovery)),
      date,
      seeds: runs.map((r) => r.seed).join(', '),
    };
  });
}

/**
 * The rows of an earlier docs/reliability.md, so that a run of some scenarios keeps the others' figures
 * (each row says when it ran). Rows without a date column take the document's "Run of" date.
 */
export function parseReport(text: string): ReportRow[] {
  const fallbackDate = /Run of (\d{4}-\d\d-\d\d)/.exec(text)?.[1] ?? 'unknown';
  const seeds = new Map<string, string>();
  for (const match of text.matchAll(/^- `([^`]+)`: (.*)$/gm)) seeds.set(match[1]!, match[2]!);
  const rows: ReportRow[] = [];
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 9 || !/^\d+$/.test(cells[2] ?? '')) continue;
    const [, scenario, runs, acknowledged, lost, corrupted, recoveryMedian, recoveryMax, maybeDate] = cells;
    rows.push({
      scenario: scenario!,
      runs: Number(runs),
      acknowledged: Number(acknowledged),
      lost: Number(lost),
      corrupted: Number(corrupted),
      recoveryMedian: recoveryMedian!,
      recoveryMax: recoveryMax!,
      date: maybeDate && /^\d{4}-\d\d-\d\d$/.test(maybeDate) ? maybeDate : fallbackDate,
      seeds: seeds.get(scenario!) ?? '',
    });
  }
  return rows;
}

function table(rows: ReportRow[]): string {
  return [
    '| scenario | runs | acknowledged writes | lost | corrupted | recovery median | recovery max | run on |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.runs} | ${r.acknowledged} | ${r.lost} | ${r.corrupted} | ${r.recoveryMedian} | ${r.recoveryMax} | ${r.date} |`,
    ),
  ].join('\n');
}

/** The Markdown table of one run: one row per scenario, in the order scenarios first ran. */
export function reliabilityTable(results: RunResult[]): string {
  return table(rowsOf(results, new Date().toISOString().slice(0, 10)));
}

/**
 * The whole of docs/reliability.md, written by the harness after an on-demand run: this run's rows, then
 * the rows of `earlier` (the file as it was) for every scenario this run did not include.
 */
export function reliabilityDocument(
  results: RunResult[],
  meta: { date: string; runs: number },
  earlier: ReportRow[] = [],
): string {
  const fresh = rowsOf(results, meta.date);
  const ran = new Set(fresh.map((r) => r.scenario));
  const rows = [...fresh, ...earlier.filter((r) => !ran.has(r.scenario))];
  const sum = (pick: (r: ReportRow) => number) => rows.reduce((total, r) => total + pick(r), 0);
  return `# Reliability

This file is written by the fault harness (\`npm run test:faults\`), not by hand. Each scenario starts the
real system (PostgreSQL, Redis, an S3 server and trendgen's own processes), drives writes through the API
or the CLI while keeping a ledger of every write that was acknowledged, injects one fault at a random
moment, waits for recovery, and reads every acknowledged write back. A run with any loss or corruption fails.
How each scenario attacks the system, and what it counts as a write, is described in
[\`test/faults/README.md\`](../test/faults/README.md).

Last run ${meta.date}: ${results.length} runs of ${ran.size} scenario${ran.size === 1 ? '' : 's'}, at least ${meta.runs} of each (seeds kept as
regression cases run too). Over every row below (each says when its scenario last ran): ${rows.length} scenarios,
${sum((r) => r.runs)} runs, **${sum((r) => r.lost)} lost, ${sum((r) => r.corrupted)} corrupted**.

${table(rows)}

"Acknowledged writes" is summed over a scenario's runs. The API-load scenarios count the writes acknowledged
during each run (and re-read every earlier one too); the vault scenarios count every write contained in the
snapshot they restore, so a write that stays in the data is counted again by each run that checks it.
Recovery is measured from the fault to the moment the system answered correctly again (for process
kills: \`/readyz\` answering 200 and every acknowledged write readable; for backup faults: the next
command that succeeds; for \`pg-failover\`, the write unavailability: from the SIGKILL of the primary to the
first acknowledged save sent after it, the standby promoted at once).

## Seeds

Replay one run with \`FAULT_SEED=<seed> FAULT_ONLY=<scenario> npm run test:faults\`.

${rows.map((r) => `- \`${r.scenario}\`: ${r.seeds}`).join('\n')}
`;
}
