import { appendFileSync, readFileSync } from 'node:fs';
import { inject } from 'vitest';

/** One run of one fault scenario, as the report counts it. */
export interface RunResult {
  scenario: string;
  seed: number;
  /** Writes the system acknowledged (HTTP 2xx, a backup that printed its id…) before and during the fault. */
  acknowledged: number;
  /** Acknowledged writes that could not be read back after recovery: must be 0. */
  lost: number;
  /** Acknowledged writes read back with different bytes, or damage that went undetected: must be 0. */
  corrupted: number;
  /** From the fault to the moment the system answered correctly again. */
  recoveryMs: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    faultResultsFile: string;
  }
}

/** How many runs each scenario makes: 1 inside `npm test`, more with FAULT_RUNS (`npm run test:faults`). */
export function faultRuns(): number {
  // A replayed seed is one run: repeating it would only repeat the same choices.
  if (process.env.FAULT_SEED) return 1;
  const runs = Number(process.env.FAULT_RUNS ?? 1);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`FAULT_RUNS must be a positive integer, not ${runs}`);
  return runs;
}

/**
 * The seed of one run: FAULT_SEED replays a printed failure (scenario and run as printed), otherwise a fresh
 * one. Every run prints its seed before it starts, so a failure can always be replayed.
 */
export function runSeed(scenario: string, run: number): number {
  const fixed = process.env.FAULT_SEED;
  const seed = fixed ? Number(fixed) : Math.floor(Math.random() * 1_000_000_000);
  console.log(
    `fault ${scenario} run ${run + 1}: seed ${seed} (replay: FAULT_SEED=${seed} FAULT_ONLY=${scenario})`,
  );
  return seed;
}

/** FAULT_ONLY=a,b runs only the named scenarios. */
export function scenarioSelected(scenario: string): boolean {
  const only = process.env.FAULT_ONLY;
  return !only || only.split(',').some((name) => name.trim() === scenario);
}

/** Appends one run to the results that the global teardown turns into the reliability table. */
export function recordRun(result: RunResult): void {
  const line = JSON.stringify(result);
  console.log(
    `fault ${result.scenario} seed ${result.seed}: ${result.acknowledged} acknowledged, ${result.lost} lost, ` +
      `${result.corrupted} corrupted, recovered in ${result.recoveryMs} ms`,
  );
  let file: string | undefined;
  try {
    file = inject('faultResultsFile');
  } catch {
    file = undefined;
  }
  if (file) appendFileSync(file, `${line}\n`);
}

export function readResults(file: string): RunResult[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RunResult);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The Markdown table: one row per scenario, in the order scenarios first ran. */
export function reliabilityTable(results: RunResult[]): string {
  const byScenario = new Map<string, RunResult[]>();
  for (const result of results) {
    const list = byScenario.get(result.scenario) ?? [];
    list.push(result);
    byScenario.set(result.scenario, list);
  }
  const rows = [...byScenario].map(([scenario, runs]) => {
    const sum = (pick: (r: RunResult) => number) => runs.reduce((total, r) => total + pick(r), 0);
    const recovery = runs.map((r) => r.recoveryMs);
    return `| ${scenario} | ${runs.length} | ${sum((r) => r.acknowledged)} | ${sum((r) => r.lost)} | ${sum((r) => r.corrupted)} | ${seconds(median(recovery))} | ${seconds(Math.max(...recovery))} |`;
  });
  return [
    '| scenario | runs | acknowledged writes | lost | corrupted | recovery median | recovery max |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/** Seeds per scenario, so that every row of the table can be replayed. */
export function seedList(results: RunResult[]): string {
  const byScenario = new Map<string, number[]>();
  for (const result of results) {
    byScenario.set(result.scenario, [...(byScenario.get(result.scenario) ?? []), result.seed]);
  }
  return [...byScenario].map(([scenario, seeds]) => `- \`${scenario}\`: ${seeds.join(', ')}`).join('\n');
}

/** The whole of docs/reliability.md, written by the harness after an on-demand run. */
export function reliabilityDocument(results: RunResult[], meta: { date: string; runs: number }): string {
  const lost = results.reduce((total, r) => total + r.lost, 0);
  const corrupted = results.reduce((total, r) => total + r.corrupted, 0);
  return `# Reliability

This file is written by the fault harness (\`npm run test:faults\`), not by hand. Each scenario starts the
real system (PostgreSQL, Redis, an S3 server and trendgen's own processes), drives writes through the API
or the CLI while keeping a ledger of every write that was acknowledged, injects one fault at a random
moment, waits for recovery, and reads every acknowledged write back. A run with any loss or corruption fails.
How each scenario attacks the system, and what it counts as a write, is described in
[\`test/faults/README.md\`](../test/faults/README.md).

Run of ${meta.date}: at least ${meta.runs} runs of every scenario (seeds kept as regression cases run too), ${results.length} runs in all,
**${lost} lost, ${corrupted} corrupted**.

${reliabilityTable(results)}

"Acknowledged writes" is summed over a scenario's runs. The API-load scenarios count the writes acknowledged
during each run (and re-read every earlier one too); the vault scenarios count every write contained in the
snapshot they restore, so a write that stays in the data is counted again by each run that checks it.
Recovery is measured from the fault to the moment the system answered correctly again (for process
kills: \`/readyz\` answering 200 and every acknowledged write readable; for backup faults: the next
command that succeeds).

## Seeds

Replay one run with \`FAULT_SEED=<seed> FAULT_ONLY=<scenario> npm run test:faults\`.

${seedList(results)}
`;
}
