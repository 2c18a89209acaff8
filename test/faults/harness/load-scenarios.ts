import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../../src/lib/process.ts';
import { seededRandom } from '../../support/files.ts';
import { generationForm, samplePhoto } from '../../support/generation.ts';
import { acknowledgedCount, emptyLedger, LoadGenerator, seedCatalog, TRENDS } from './load.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './report.ts';
import { FaultSystem } from './system.ts';
import { verifyLedger } from './verify.ts';

export interface LoadScenario {
  name: string;
  why: string;
  inject(system: FaultSystem): Promise<void>;
  /** After the fault the operator starts `trendgen up` again; otherwise the supervisor must recover alone. */
  restart?: boolean;
  /** Seeds that once found a bug: replayed first in every run of the suite (timing makes them approximate). */
  regressions?: number[];
}

/** A generation asked for after the fault completes: the whole pipeline works again. */
async function probeGeneration(system: FaultSystem, photo: Buffer, timeoutMs: number): Promise<void> {
  await waitFor(
    'a new generation to succeed',
    async () => {
      const form = generationForm({ trend: TRENDS[0]!, user: 'probe', variants: '1' }, photo);
      const response = await fetch(`${system.baseUrl}/api/v1/generations`, {
        method: 'POST',
        headers: { ...system.client, 'content-type': form.contentType },
        body: form.payload,
        signal: AbortSignal.timeout(10_000),
      }).catch(() => undefined);
      if (response?.status !== 202) return undefined;
      const { id } = (await response.json()) as { id: string };
      return await waitFor(
        `probe generation ${id}`,
        async () => {
          const view = await fetch(`${system.baseUrl}/api/v1/generations/${id}`, {
            headers: system.client,
          }).catch(() => undefined);
          const body = view?.ok ? ((await view.json()) as { status: string }) : undefined;
          return body?.status === 'succeeded' ? true : undefined;
        },
        timeoutMs,
        50,
      );
    },
    timeoutMs,
    200,
  );
}

/** Runs each scenario against one `trendgen up` under API load, FAULT_RUNS times, and records every run. */
export function describeLoadScenarios(title: string, name: string, scenarios: LoadScenario[]): void {
  describe(title, () => {
    const system = new FaultSystem(name);
    const ledger = emptyLedger();
    let probePhoto: Buffer;
    beforeAll(async () => {
      await system.start();
      await seedCatalog(system, ledger);
      probePhoto = await samplePhoto(99, 48);
    }, 180_000);
    afterAll(async () => system.remove(), 120_000);

    for (const scenario of scenarios) {
      it.skipIf(!scenarioSelected(scenario.name))(
        `${scenario.name} (${scenario.why}): every acknowledged write survives`,
        async () => {
          const regressions = process.env.FAULT_SEED ? [] : (scenario.regressions ?? []);
          for (let run = 0; run < regressions.length + faultRuns(); run++) {
            const seed = regressions[run] ?? runSeed(scenario.name, run - regressions.length);
            if (run < regressions.length) console.log(`fault ${scenario.name}: regression seed ${seed}`);
            const random = seededRandom(seed);
            const before = acknowledgedCount(ledger);
            const load = new LoadGenerator(() => system, ledger, seed);
            await load.start();
            let faultAt: number;
            try {
              await sleep(400 + random() * 2000);
              faultAt = Date.now();
              await scenario.inject(system);
              // The clients keep writing into the damaged system for a while: those writes may fail, but none
              // that was acknowledged may be lost.
              await sleep(random() * 1500);
              if (scenario.restart) await system.start();
              await system.waitHealthy();
            } finally {
              await load.stop();
            }
            const healthyMs = Date.now() - faultAt;
            await probeGeneration(system, probePhoto, 60_000);
            const recoveryMs = Date.now() - faultAt;
            console.log(
              `${scenario.name}: healthy after ${healthyMs} ms, a new generation done after ${recoveryMs} ms`,
            );
            const verdict = await verifyLedger(system, ledger);
            for (const file of system.checkObjectFiles()) {
              verdict.corrupted++;
              verdict.problems.push(`corrupted: the blob file ${file} does not hash to its name`);
            }
            const acknowledged = acknowledgedCount(ledger);
            recordRun({
              scenario: scenario.name,
              seed,
              acknowledged: acknowledged - before,
              lost: verdict.lost,
              corrupted: verdict.corrupted,
              recoveryMs,
            });
            expect(verdict.problems, `seed ${seed}\n${system.output().slice(-4000)}`).toEqual([]);
            expect(acknowledged, 'the load made no acknowledged write at all').toBeGreaterThan(before);
          }
        },
        ((scenario.regressions?.length ?? 0) + faultRuns()) * 240_000,
      );
    }
  });
}
