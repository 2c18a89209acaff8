import { sleep } from '../../../src/lib/process.ts';
import { type Endpoint, type Ledger, sendDeletion, sha256 } from './load.ts';

export interface Verdict {
  lost: number;
  corrupted: number;
  /** One line per lost or corrupted write, for the failure message. */
  problems: string[];
}

async function get(endpoint: Endpoint, path: string): Promise<Response> {
  // Verification runs after recovery, but a client is allowed to retry a 503 (a pooled connection that
  // died with the fault answers once more) or a refused connection; anything else is the answer.
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`${endpoint.baseUrl}${path}`, {
      headers: endpoint.client,
      signal: AbortSignal.timeout(15_000),
    }).catch((error: Error) => error);
    if (response instanceof Response && (response.status !== 503 || attempt >= 5)) return response;
    if (response instanceof Error && attempt >= 5) throw response;
    await sleep(500);
  }
}

async function inBatches<T>(items: T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

/** Reads one object back: undefined when it is intact, otherwise what is wrong with it. */
async function checkObject(
  endpoint: Endpoint,
  key: string,
  expected: string | undefined,
): Promise<'lost' | 'corrupted' | undefined> {
  const response = await get(endpoint, `/api/v1/objects/${key}`);
  if (response.status !== 200) return 'lost';
  const actual = sha256(Buffer.from(await response.arrayBuffer()));
  const want = expected ?? response.headers.get('etag')?.replaceAll('"', '');
  return actual === want ? undefined : 'corrupted';
}

interface GenerationView {
  status: string;
  error?: { message?: string } | string;
  outputs: Array<{ key: string; previewKey: string }>;
}

/**
 * Reads every acknowledged write back through the API. Generations must all reach `succeeded` (the
 * local renderer never fails on its own, so anything else was caused by a fault); deleted users' earlier
 * generations must stay gone.
 */
export async function verifyLedger(
  endpoint: Endpoint,
  ledger: Ledger,
  timeoutMs = 180_000,
): Promise<Verdict> {
  const verdict: Verdict = { lost: 0, corrupted: 0, problems: [] };
  const fail = (kind: 'lost' | 'corrupted', what: string) => {
    verdict[kind]++;
    verdict.problems.push(`${kind}: ${what}`);
  };

  for (const [user, deletion] of ledger.deletions) {
    if (!deletion.acknowledged) deletion.acknowledged = await sendDeletion(endpoint, user);
    if (!deletion.acknowledged) fail('lost', `the deletion of ${user} is still not accepted after recovery`);
  }

  await inBatches(ledger.prompts, 16, async ({ name, version, sha256: expected }) => {
    const response = await get(endpoint, `/api/v1/prompts/${name}/versions/${version}`);
    if (response.status !== 200)
      return fail('lost', `prompt ${name} version ${version} (${response.status})`);
    const body = (await response.json()) as { sha256: string; content: string };
    if (body.sha256 !== expected || sha256(body.content) !== expected) {
      fail('corrupted', `prompt ${name} version ${version}`);
    }
  });

  await inBatches(ledger.objects, 16, async ({ key, sha256: expected }) => {
    const problem = await checkObject(endpoint, key, expected);
    if (problem) fail(problem, `object ${key}`);
  });

  const gone = new Set([...ledger.deletions.values()].flatMap((d) => d.before));
  const deadline = Date.now() + timeoutMs;
  let open = ledger.generations.filter((g) => !gone.has(g.id));
  const finished: Array<{ id: string; view: GenerationView }> = [];
  while (open.length > 0) {
    const stillOpen: typeof open = [];
    await inBatches(open, 16, async (generation) => {
      const response = await get(endpoint, `/api/v1/generations/${generation.id}`);
      if (response.status === 404) return fail('lost', `generation ${generation.id} is gone`);
      const view = (await response.json()) as GenerationView;
      if (view.status === 'queued' || view.status === 'running') stillOpen.push(generation);
      else finished.push({ id: generation.id, view });
    });
    open = stillOpen;
    if (open.length === 0) break;
    if (Date.now() > deadline) {
      for (const g of open) fail('lost', `generation ${g.id} never finished`);
      break;
    }
    await sleep(250);
  }
  await inBatches(finished, 8, async ({ id, view }) => {
    if (view.status !== 'succeeded') {
      const reason = typeof view.error === 'string' ? view.error : view.error?.message;
      return fail('lost', `generation ${id} ended ${view.status}: ${reason ?? 'no reason'}`);
    }
    if (view.outputs.length === 0) return fail('lost', `generation ${id} succeeded without outputs`);
    for (const output of view.outputs) {
      for (const key of [output.key, output.previewKey]) {
        const problem = await checkObject(endpoint, key, undefined);
        if (problem) fail(problem, `output ${key} of generation ${id}`);
      }
    }
  });

  await inBatches([...gone], 16, async (id) => {
    const response = await get(endpoint, `/api/v1/generations/${id}`);
    if (response.status !== 404) fail('lost', `generation ${id} of a deleted user is visible again`);
  });
  return verdict;
}
