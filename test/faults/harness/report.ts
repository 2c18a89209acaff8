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
