import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { seededRandom } from '../support/files.ts';
import {
  acknowledgedCount,
  emptyLedger,
  LoadGenerator,
  PROMPTS,
  seedCatalog,
  sha256,
} from './harness/load.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import { FaultSystem } from './harness/system.ts';
import { verifyLedger } from './harness/verify.ts';

interface Scenario {
  name: string;
  /** What the file is made into; undefined deletes it. */
  content(random: () => number): Buffer | undefined;
  state: 'invalid' | 'deleted';
}

const SCENARIOS: Scenario[] = [
  {
    name: 'prompt-garbage',
    state: 'invalid',
    content: (random) =>
      Buffer.from(
        Array.from({ length: 256 + Math.floor(random() * 4096) }, () => Math.floor(random() * 256)),
      ),
  },
  { name: 'prompt-empty', state: 'invalid', content: () => Buffer.alloc(0) },
  {
    name: 'prompt-50mb',
    state: 'invalid',
    content: () => Buffer.from(`name: x\ntemplate: "${'y'.repeat(50 * 1024 * 1024)}"\n`),
  },
  { name: 'prompt-deleted', state: 'deleted', content: () => undefined },
];

interface PromptView {
  name: string;
  version: number;
  sha256: string;
  content: string;
  fileState: string;
}

describe('faults: prompt files damaged on disk under load through the API', () => {
  const system = new FaultSystem('prompt-files');
  const ledger = emptyLedger();
  beforeAll(async () => {
    await system.start();
    await seedCatalog(system, ledger);
  }, 180_000);
  afterAll(async () => system.remove(), 120_000);

  const prompt = async (name: string): Promise<PromptView> => {
    const response = await fetch(`${system.baseUrl}/api/v1/prompts/${name}`, { headers: system.client });
    expect(response.status, `GET prompt ${name}`).toBe(200);
    return (await response.json()) as PromptView;
  };

  for (const scenario of SCENARIOS) {
    it.skipIf(!scenarioSelected(scenario.name))(
      `${scenario.name} (I5): the last valid version stays current, every version stays readable`,
      async () => {
        for (let run = 0; run < faultRuns(); run++) {
          const seed = runSeed(scenario.name, run);
          const random = seededRandom(seed);
          const before = acknowledgedCount(ledger);
          const name = PROMPTS[Math.floor(random() * PROMPTS.length)]!;
          const file = path.join(system.promptsDir, `${name}.yaml`);
          const load = new LoadGenerator(() => system, ledger, seed);
          await load.start();
          let faultAt = 0;
          let corrupted = 0;
          try {
            await sleep(300 + random() * 1500);
            faultAt = Date.now();
            const bytes = scenario.content(random);
            if (bytes) writeFileSync(file, bytes);
            else rmSync(file, { force: true });
            // The damage is noticed and recorded (an `invalid` or `deleted` event), unless an API edit
            // from the load rewrote the file first.
            await waitFor(
              `the ${scenario.state} file of ${name} to be noticed`,
              async () => {
                const view = await prompt(name);
                const onDisk = existsSync(file) ? sha256(readFileSync(file)) : undefined;
                return view.fileState === scenario.state || onDisk === view.sha256 ? true : undefined;
              },
              30_000,
              100,
            );
          } finally {
            await load.stop();
          }
          // I5: what is served is a stored version, never the damaged file.
          const current = await prompt(name);
          if (sha256(current.content) !== current.sha256) corrupted++;
          const newest = Math.max(...ledger.prompts.filter((p) => p.name === name).map((p) => p.version));
          expect(current.version, 'an acknowledged version was rolled back').toBeGreaterThanOrEqual(newest);

          // The operator's fix: put the current version back; the file on disk is whole again.
          const put = await fetch(`${system.baseUrl}/api/v1/prompts/${name}`, {
            method: 'PUT',
            headers: { ...system.admin, 'content-type': 'application/yaml' },
            body: current.content,
          });
          expect(put.status, await put.clone().text()).toBeLessThan(300);
          const recoveryMs = Date.now() - faultAt;
          if (sha256(readFileSync(file)) !== current.sha256) corrupted++;
          expect((await prompt(name)).fileState).toBe('ok');

          const verdict = await verifyLedger(system, ledger);
          recordRun({
            scenario: scenario.name,
            seed,
            acknowledged: acknowledgedCount(ledger) - before,
            lost: verdict.lost,
            corrupted: verdict.corrupted + corrupted,
            recoveryMs,
          });
          expect(verdict.problems, `seed ${seed}`).toEqual([]);
          expect(corrupted, `seed ${seed}: the served or restored prompt differs from its version`).toBe(0);
        }
      },
      faultRuns() * 180_000,
    );
  }
});
