import { createHash } from 'node:crypto';
import { fakePng, SAMPLE_PROMPT } from '../../support/api.ts';
import { seededRandom } from '../../support/files.ts';
import { generationForm, samplePhoto } from '../../support/generation.ts';

export const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Everything the system said yes to: the harness reads each one back after the fault. */
export interface Ledger {
  /** `at`: when the answer arrived (ms since the epoch), for faults that allow a recovery point behind it. */
  prompts: Array<{ name: string; version: number; sha256: string; at?: number }>;
  objects: Array<{ key: string; sha256: string; at?: number }>;
  generations: Array<{ id: string; user: string; at?: number }>;
  /**
   * User-data deletions: `before` holds the generations acknowledged before the request was sent, which must
   * stay gone. A deletion whose answer was lost is sent again after recovery (it is idempotent).
   */
  deletions: Map<string, { acknowledged: boolean; before: string[] }>;
}

export function emptyLedger(): Ledger {
  return { prompts: [], objects: [], generations: [], deletions: new Map() };
}

export function acknowledgedCount(ledger: Ledger): number {
  const deletions = [...ledger.deletions.values()].filter((d) => d.acknowledged).length;
  return ledger.prompts.length + ledger.objects.length + ledger.generations.length + deletions;
}

export interface Endpoint {
  baseUrl: string;
  admin: Record<string, string>;
  client: Record<string, string>;
}

export const PROMPTS = ['fault-a', 'fault-b'];
export const TRENDS = ['fault-one', 'fault-two', 'fault-three'];

/** The local renderer, small images: generations finish in well under a second. */
export function promptText(name: string, revision: string): string {
  return SAMPLE_PROMPT(name, `Turn {subject} into a portrait, revision ${revision}`)
    .replace('model: gpt-image-1', 'model: local')
    .replace('size: medium', 'size: small');
}

async function call(
  endpoint: Endpoint,
  path: string,
  init: RequestInit & { headers?: Record<string, string> },
): Promise<Response | undefined> {
  try {
    return await fetch(`${endpoint.baseUrl}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });
  } catch {
    // The connection died or timed out: nothing was acknowledged, so nothing is promised.
    return undefined;
  }
}

/** Prompts and trends the load refers to; made once, before any fault, and part of the ledger. */
export async function seedCatalog(endpoint: Endpoint, ledger: Ledger): Promise<void> {
  for (const name of PROMPTS) {
    const text = promptText(name, 'initial');
    const response = await call(endpoint, `/api/v1/prompts/${name}`, {
      method: 'PUT',
      headers: { ...endpoint.admin, 'content-type': 'application/yaml' },
      body: text,
    });
    if (!response?.ok) throw new Error(`could not create prompt ${name}: ${response?.status}`);
    const body = (await response.json()) as { version: number; sha256: string };
    ledger.prompts.push({ name, version: body.version, sha256: body.sha256 });
  }
  for (const [i, slug] of TRENDS.entries()) {
    const response = await call(endpoint, '/api/v1/trends', {
      method: 'POST',
      headers: { ...endpoint.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ slug, title: slug, prompt: PROMPTS[i % PROMPTS.length] }),
    });
    if (response?.status !== 201) throw new Error(`could not create trend ${slug}: ${response?.status}`);
  }
}

/**
 * Steady traffic through the public API from a few concurrent clients — prompt edits, trend examples,
 * generations and user-data deletions — recording every acknowledged write in the ledger.
 */
export class LoadGenerator {
  private running = false;
  private loops: Promise<void>[] = [];
  private photos: Buffer[] = [];
  private counter = 0;
  readonly attempted = { prompts: 0, objects: 0, generations: 0, deletions: 0 };

  constructor(
    private readonly endpoint: () => Endpoint,
    private readonly ledger: Ledger,
    private readonly seed: number,
  ) {}

  async start(clients = 4): Promise<void> {
    if (this.photos.length === 0) {
      this.photos = await Promise.all(Array.from({ length: 6 }, (_, i) => samplePhoto(i + 1, 48)));
    }
    this.running = true;
    this.loops = Array.from({ length: clients }, (_, i) => this.loop(seededRandom(this.seed * 31 + i)));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(random: () => number): Promise<void> {
    while (this.running) {
      const pick = random();
      if (pick < 0.2) await this.editPrompt(random);
      else if (pick < 0.45) await this.uploadExample(random);
      else if (pick < 0.92) await this.generate(random);
      else await this.deleteUser();
      await new Promise((resolve) => setTimeout(resolve, 5 + random() * 40));
    }
  }

  private unique(): string {
    return `${this.seed}-${this.counter++}`;
  }

  private async editPrompt(random: () => number): Promise<void> {
    this.attempted.prompts++;
    const name = PROMPTS[Math.floor(random() * PROMPTS.length)]!;
    const response = await call(this.endpoint(), `/api/v1/prompts/${name}`, {
      method: 'PUT',
      headers: { ...this.endpoint().admin, 'content-type': 'application/yaml' },
      body: promptText(name, this.unique()),
    });
    if (!response?.ok) return;
    const body = (await response.json()) as { version: number; sha256: string };
    this.ledger.prompts.push({ name, version: body.version, sha256: body.sha256, at: Date.now() });
  }

  private async uploadExample(random: () => number): Promise<void> {
    this.attempted.objects++;
    const slug = TRENDS[Math.floor(random() * TRENDS.length)]!;
    const image = fakePng(2_000 + Math.floor(random() * 60_000), Buffer.from(this.unique()));
    const response = await call(this.endpoint(), `/api/v1/trends/${slug}/example`, {
      method: 'PUT',
      headers: { ...this.endpoint().admin, 'content-type': 'image/png' },
      body: image,
    });
    if (!response?.ok) return;
    const body = (await response.json()) as { key: string; sha256: string };
    if (body.sha256 !== sha256(image)) throw new Error(`upload acknowledged with a wrong hash: ${body.key}`);
    this.ledger.objects.push({ key: body.key, sha256: body.sha256, at: Date.now() });
  }

  private async generate(random: () => number): Promise<void> {
    this.attempted.generations++;
    const user = `user-${this.seed}-${Math.floor(random() * 6)}`;
    if (this.ledger.deletions.has(user)) return;
    const form = generationForm(
      { trend: TRENDS[Math.floor(random() * TRENDS.length)]!, user, variants: '1' },
      this.photos[Math.floor(random() * this.photos.length)]!,
    );
    const response = await call(this.endpoint(), '/api/v1/generations', {
      method: 'POST',
      headers: { ...this.endpoint().client, 'content-type': form.contentType },
      body: form.payload,
    });
    if (response?.status !== 202) return;
    const body = (await response.json()) as { id: string };
    // Accepted while a deletion of the same user was in flight: either order is correct, so it is not counted.
    if (this.ledger.deletions.has(user)) return;
    this.ledger.generations.push({ id: body.id, user, at: Date.now() });
  }

  /** Deletes one user per seed, once: generations for a deleted user are never requested again. */
  private async deleteUser(): Promise<void> {
    const user = `user-${this.seed}-0`;
    if (this.ledger.deletions.has(user)) return;
    this.attempted.deletions++;
    const before = this.ledger.generations.filter((g) => g.user === user).map((g) => g.id);
    const deletion = { acknowledged: false, before };
    this.ledger.deletions.set(user, deletion);
    deletion.acknowledged = await sendDeletion(this.endpoint(), user);
  }
}

export async function sendDeletion(endpoint: Endpoint, user: string): Promise<boolean> {
  const response = await call(endpoint, `/api/v1/users/${user}/data`, {
    method: 'DELETE',
    headers: endpoint.admin,
  });
  return response?.ok ?? false;
}
