import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../src/lib/process.ts';
import { seededRandom } from '../support/files.ts';
import {
  acknowledgedCount,
  emptyLedger,
  LoadGenerator,
  PROMPTS,
  promptText,
  seedCatalog,
  sha256,
} from './harness/load.ts';
import { faultRuns, recordRun, runSeed, scenarioSelected } from './harness/report.ts';
import { FaultSystem } from './harness/system.ts';
import { verifyLedger } from './harness/verify.ts';

/** What one hostile scenario did to the folder, and how to check and undo it. */
interface Injected {
  /** Prompt names whose files are hostile: the API must name each invalid. */
  invalid: string[];
  /** More problems found after the fault (something outside read, a torn read recorded). */
  check(system: FaultSystem): Promise<string[]>;
  cleanup(): void;
}

interface Scenario {
  name: string;
  inject(system: FaultSystem, outside: string, random: () => number): Promise<Injected>;
}

const SENTINEL = 'OUTSIDE-SECRET-SENTINEL';
const PAST = new Date('2001-01-01T00:00:00Z');

/** A file outside PROMPTS_DIR whose atime moves if anything reads it. */
function sentinelFile(outside: string, name: string): { file: string; read(): boolean } {
  const file = path.join(outside, name);
  writeFileSync(file, `${promptText('hostile-link', SENTINEL)}\n# ${SENTINEL}\n`, { mode: 0o600 });
  utimesSync(file, PAST, new Date());
  return { file, read: () => statSync(file).atimeMs !== PAST.getTime() };
}

/**
 * Puts something made by `make` in place of a prompt file the load keeps saving: made under a hidden name and
 * renamed over it, so a save landing in between cannot make the injection fail.
 */
function replaceUnderLoad(file: string, make: (at: string) => void): void {
  const hidden = path.join(path.dirname(file), `.injecting-${path.basename(file)}`);
  rmSync(hidden, { force: true });
  make(hidden);
  renameSync(hidden, file);
}

function releaseFifo(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // No reader waits on it.
  }
}

const SCENARIOS: Scenario[] = [
  {
    name: 'folder-symlink-out',
    inject: async (system, outside) => {
      const secret = sentinelFile(outside, `secret-${Date.now()}`);
      const link = path.join(system.promptsDir, 'hostile-link.yaml');
      rmSync(link, { force: true });
      symlinkSync(secret.file, link);
      // A prompt the load edits, turned into a link too: the next API save replaces the link, not its target.
      const loaded = path.join(system.promptsDir, `${PROMPTS[1]}.yaml`);
      replaceUnderLoad(loaded, (at) => symlinkSync(secret.file, at));
      return {
        invalid: ['hostile-link'],
        check: async (s) => {
          const problems: string[] = [];
          if (secret.read()) problems.push('the file a link points to outside PROMPTS_DIR was read');
          const response = await fetch(`${s.baseUrl}/api/v1/prompts`, { headers: s.client });
          if ((await response.text()).includes(SENTINEL))
            problems.push('the API served content from outside');
          return problems;
        },
        cleanup: () => rmSync(link, { force: true }),
      };
    },
  },
  {
    name: 'folder-fifo',
    inject: async (system) => {
      // More FIFOs than libuv has threads, and a prompt under load turned into one.
      const names = [
        'hostile-fifo-1',
        'hostile-fifo-2',
        'hostile-fifo-3',
        'hostile-fifo-4',
        'hostile-fifo-5',
      ];
      const fifos = names.map((name) => path.join(system.promptsDir, `${name}.yaml`));
      for (const fifo of fifos) {
        rmSync(fifo, { force: true });
        execFileSync('mkfifo', [fifo]);
      }
      const loaded = path.join(system.promptsDir, `${PROMPTS[0]}.yaml`);
      replaceUnderLoad(loaded, (at) => execFileSync('mkfifo', [at]));
      return {
        invalid: names,
        check: async () => [],
        cleanup: () => {
          for (const fifo of [...fifos, loaded]) releaseFifo(fifo);
          for (const fifo of fifos) rmSync(fifo, { force: true });
        },
      };
    },
  },
  {
    name: 'folder-socket',
    inject: async (system) => {
      const file = path.join(system.promptsDir, 'hostile-socket.yaml');
      rmSync(file, { force: true });
      const server = net.createServer((socket) => socket.destroy()).listen(file);
      await new Promise((resolve) => server.once('listening', resolve));
      return {
        invalid: ['hostile-socket'],
        check: async () => [],
        cleanup: () => {
          server.close();
          rmSync(file, { force: true });
        },
      };
    },
  },
  {
    name: 'folder-empty-file',
    inject: async (system) => {
      const file = path.join(system.promptsDir, 'hostile-empty.yaml');
      writeFileSync(file, '');
      return {
        invalid: ['hostile-empty'],
        check: async () => [],
        cleanup: () => rmSync(file, { force: true }),
      };
    },
  },
  {
    name: 'folder-replaced-while-read',
    inject: async (system, _outside, random) => {
      // Large valid contents renamed over the file every few milliseconds: a read must see one of them whole.
      const name = `hostile-swap-${Date.now().toString(36)}`;
      const file = path.join(system.promptsDir, `${name}.yaml`);
      const written = new Set<string>();
      const until = Date.now() + 2500;
      for (let n = 0; Date.now() < until; n++) {
        const text = promptText(name, `${n} ${'x'.repeat(20_000 + Math.floor(random() * 60_000))}`);
        const temp = path.join(system.promptsDir, `.${name}.${n}.tmp`);
        writeFileSync(temp, text);
        renameSync(temp, file);
        written.add(sha256(text));
        await sleep(2 + random() * 8);
      }
      return {
        invalid: [],
        check: async (s) => {
          const problems: string[] = [];
          await sleep(1500);
          const list = await fetch(`${s.baseUrl}/api/v1/prompts/${name}/versions`, { headers: s.client });
          if (list.status !== 200) return [`no history for ${name}: ${list.status}`];
          const { versions } = (await list.json()) as {
            versions: Array<{ sha256: string; version: number }>;
          };
          for (const version of versions) {
            if (!written.has(version.sha256))
              problems.push(`${name} v${version.version} is no content ever written`);
          }
          if (versions.length === 0) problems.push(`${name}: nothing was recorded`);
          return problems;
        },
        cleanup: () => rmSync(file, { force: true }),
      };
    },
  },
];

/** Hits the routes everyone depends on while the fault lasts; each must answer within a second. */
async function probe(system: FaultSystem, untilMs: number): Promise<{ problems: string[]; maxMs: number }> {
  const problems: string[] = [];
  let maxMs = 0;
  const routes = ['/readyz', '/healthz', '/api/v1/trends', '/api/v1/prompts'];
  while (Date.now() < untilMs) {
    for (const route of routes) {
      const started = Date.now();
      const response = await fetch(`${system.baseUrl}${route}`, {
        headers: system.client,
        signal: AbortSignal.timeout(1000),
      }).catch((error: Error) => error);
      const ms = Date.now() - started;
      maxMs = Math.max(maxMs, ms);
      if (response instanceof Error) problems.push(`${route} did not answer within 1 s (${response.name})`);
      else if (response.status !== 200) problems.push(`${route} answered ${response.status}`);
    }
    await sleep(100);
  }
  return { problems, maxMs };
}

describe('faults: a hostile PROMPTS_DIR under load through the API', () => {
  const system = new FaultSystem('hostile-folder');
  const ledger = emptyLedger();
  let outside: string;
  beforeAll(async () => {
    await system.start();
    await seedCatalog(system, ledger);
    outside = path.join(system.dir, 'outside');
    mkdirSync(outside, { recursive: true });
  }, 180_000);
  afterAll(async () => system.remove(), 120_000);

  for (const scenario of SCENARIOS) {
    it.skipIf(!scenarioSelected(scenario.name))(
      `${scenario.name}: every route answers within 1 s, nothing outside is read, every acknowledged write survives`,
      async () => {
        for (let run = 0; run < faultRuns(); run++) {
          const seed = runSeed(scenario.name, run);
          const random = seededRandom(seed);
          const before = acknowledgedCount(ledger);
          const load = new LoadGenerator(() => system, ledger, seed);
          await load.start();
          let injected: Injected | undefined;
          const problems: string[] = [];
          let faultAt = 0;
          let maxMs = 0;
          try {
            await sleep(300 + random() * 1000);
            faultAt = Date.now();
            injected = await scenario.inject(system, outside, random);
            const probed = await probe(system, Date.now() + 4000);
            problems.push(...probed.problems);
            maxMs = probed.maxMs;
            for (const name of injected.invalid) {
              await waitFor(
                `${name} to be reported invalid`,
                async () => {
                  const response = await fetch(`${system.baseUrl}/api/v1/prompts`, {
                    headers: system.client,
                  });
                  const { prompts } = (await response.json()) as {
                    prompts: Array<{
                      name: string;
                      fileState: string;
                      fileError: { message: string } | null;
                    }>;
                  };
                  const row = prompts.find((p) => p.name === name);
                  return row?.fileState === 'invalid' && row.fileError?.message ? true : undefined;
                },
                20_000,
              );
            }
            problems.push(...(await injected.check(system)));
          } finally {
            injected?.cleanup();
            await load.stop();
          }
          const recoveryMs = Date.now() - faultAt;
          const verdict = await verifyLedger(system, ledger);
          console.log(`${scenario.name}: slowest answer during the fault ${maxMs} ms`);
          recordRun({
            scenario: scenario.name,
            seed,
            acknowledged: acknowledgedCount(ledger) - before,
            lost: verdict.lost,
            corrupted: verdict.corrupted + problems.length,
            recoveryMs,
          });
          expect([...verdict.problems, ...problems], `seed ${seed}\n${system.output().slice(-3000)}`).toEqual(
            [],
          );
        }
      },
      faultRuns() * 180_000,
    );
  }
});
