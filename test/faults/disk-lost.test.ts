import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/lib/process.ts';
import { runCli } from '../support/cli.ts';
import { seededRandom } from '../support/files.ts';
import { generationForm, samplePhoto } from '../support/generation.ts';
import { type Allowances, ASYNC_ALLOWANCES, dueBefore, SYNC_ALLOWANCES } from './harness/allowance.ts';
import {
  emptyLedger,
  type Ledger,
  LoadGenerator,
  seedCatalog,
  sendDeletion,
  TRENDS,
} from './harness/load.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import { FaultSystem } from './harness/system.ts';
import { verifyLedger } from './harness/verify.ts';

/** `trendgen up` with continuous protection and its seeded catalog, for the describe block that calls this. */
function systemUnderLoad(
  name: string,
  env: Record<string, string> = {},
): { system: FaultSystem; ledger: Ledger } {
  const system = new FaultSystem(name, { BACKUP_KEY: randomBytes(32).toString('hex'), ...env });
  const ledger = emptyLedger();
  beforeAll(async () => {
    await system.start();
    await seedCatalog(system, ledger);
  }, 180_000);
  afterAll(async () => system.remove(), 120_000);
  return { system, ledger };
}

/** Until the first base backup exists there is no moment to restore. */
async function untilRestorable(system: FaultSystem): Promise<void> {
  for (let i = 0; i < 240; i++) {
    const status = await runCli(['status', '--json'], system.env);
    if (JSON.parse(status.stdout || '{}').window) return;
    await sleep(500);
  }
}

/**
 * Under API load, every process is SIGKILLed and DATA_DIR and PROMPTS_DIR are deleted (the disk died;
 * BACKUP_DIR is another disk). `trendgen restore latest` then `trendgen up`: every write acknowledged earlier
 * than the mode's allowance before the loss is back byte-identical, and the service works again.
 */
async function diskLostRuns(
  system: FaultSystem,
  ledger: Ledger,
  scenario: string,
  allowances: Allowances,
): Promise<void> {
  for (let run = 0; run < faultRuns(); run++) {
    const seed = runSeed(scenario, run);
    const random = seededRandom(seed);
    await untilRestorable(system);
    const load = new LoadGenerator(() => system, ledger, seed);
    await load.start();
    await sleep(1500 + random() * 4000);
    // What status said just before the loss: on a failure, it tells which source's recovery point lagged.
    const statusBefore = (await runCli(['status', '--json'], system.env)).stdout;
    const faultAt = Date.now();
    await system.killEverything();
    const outputBefore = system.output();
    await load.stop();
    const restore = await system.loseDataDiskAndRestore();
    expect(restore.code, restore.stderr).toBe(0);
    const recoveryMs = Date.now() - faultAt;
    const due = dueBefore(ledger, faultAt, allowances);
    const verdict = await verifyLedger(system, due);
    const acknowledged = due.prompts.length + due.objects.length + due.generations.length;
    recordRun({ scenario, seed, acknowledged, lost: verdict.lost, corrupted: verdict.corrupted, recoveryMs });
    // A lagging objects' watermark clamps the restore: the stream's own complaints say why it lagged.
    const streamProblems = outputBefore
      .split('\n')
      .filter((line) => line.includes('object stream problem'))
      .slice(-5)
      .join('\n');
    expect(
      verdict.problems,
      `seed ${seed}, loss at ${new Date(faultAt).toISOString()}\nstatus before: ${statusBefore}\n${restore.stdout}\n${streamProblems}\n${system.output().slice(-3000)}`,
    ).toEqual([]);
    expect(acknowledged, 'the load made no acknowledged write old enough to count').toBeGreaterThan(0);
    // The ledger goes on from what was restored: later runs check only what they acknowledge.
    Object.assign(ledger, dueBefore(ledger, faultAt, allowances));
  }
}

/**
 * disk-lost-sync: the same loss with BACKUP_SYNC=on, where a commit waits for its WAL on the backup disk and an
 * upload for the local target: every write acknowledged before the loss must come back, with no allowance.
 */
describe.skipIf(!scenarioSelected('disk-lost-sync'))('faults: the data disk lost in synchronous mode', () => {
  const { system, ledger } = systemUnderLoad('disk-lost-sync', { BACKUP_SYNC: 'on' });

  it(
    'disk-lost-sync (I8, I11): every acknowledged write comes back',
    async () => await diskLostRuns(system, ledger, 'disk-lost-sync', SYNC_ALLOWANCES),
    faultRuns() * 360_000,
  );
});

/** disk-lost: in the default asynchronous mode, writes of the last 1 s (PostgreSQL) / 5 s (objects) may go. */
describe.skipIf(!scenarioSelected('disk-lost') && !scenarioSelected('deletion-killed'))(
  'faults: the data disk lost under load, continuous protection restores the newest moment',
  () => {
    const { system, ledger } = systemUnderLoad('disk-lost', { LOG_LEVEL: 'warn' });

    it.skipIf(!scenarioSelected('disk-lost'))(
      'disk-lost (I8, I11): the newest moment every source agrees on comes back',
      async () => await diskLostRuns(system, ledger, 'disk-lost', ASYNC_ALLOWANCES),
      faultRuns() * 360_000,
    );

    /** The disk dies as soon as a user's deletion is answered; the restore must not bring the user's data back. */
    it.skipIf(!scenarioSelected('deletion-killed'))(
      'deletion-killed (I3): a deletion answered 200, then SIGKILL within 50 ms and the disk lost, stays deleted',
      async () => {
        for (let run = 0; run < faultRuns(); run++) {
          const seed = runSeed('deletion-killed', run);
          const user = `victim-${seed}`;
          const form = generationForm(
            { trend: TRENDS[0]!, user, variants: '1' },
            await samplePhoto(seed % 97, 48),
          );
          const created = await fetch(`${system.baseUrl}/api/v1/generations`, {
            method: 'POST',
            headers: { ...system.client, 'content-type': form.contentType },
            body: form.payload,
            signal: AbortSignal.timeout(30_000),
          });
          expect(created.status).toBe(202);
          const { id } = (await created.json()) as { id: string };
          // Long enough for the generation to be in every backup the restore could use.
          await sleep(6000);
          expect(await sendDeletion(system, user)).toBe(true);
          const faultAt = Date.now();
          await sleep(seededRandom(seed)() * 50);
          await system.killEverything();
          const restore = await system.loseDataDiskAndRestore();
          expect(restore.code, restore.stderr).toBe(0);
          const deletion = { acknowledged: true, before: [id] };
          const verdict = await verifyLedger(system, {
            ...emptyLedger(),
            deletions: new Map([[user, deletion]]),
          });
          recordRun({
            scenario: 'deletion-killed',
            seed,
            acknowledged: 1,
            lost: verdict.lost,
            corrupted: verdict.corrupted,
            recoveryMs: Date.now() - faultAt,
          });
          expect(verdict.problems, `seed ${seed}\n${restore.stdout}`).toEqual([]);
        }
      },
      faultRuns() * 360_000,
    );
  },
);
