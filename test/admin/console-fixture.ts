import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium, type Page } from 'playwright-core';
import { EmbeddedRedis } from '../../src/embedded/redis.ts';
import { type ImageProvider, PermanentProviderError } from '../../src/generation/providers/provider.ts';
import { runDoctor } from '../../src/ops/doctor/index.ts';
import { saveDoctorReport } from '../../src/ops/doctor/reports.ts';
import { SAMPLE_PROMPT, startTestApi, type TestApi } from '../support/api.ts';
import {
  createTrendWithPrompt,
  postGeneration,
  samplePhoto,
  startTestWorker,
  type TestWorker,
  waitForStatus,
} from '../support/generation.ts';
import { tempDir } from '../support/temp.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const PROMPT = 'ghibli-portrait';
export const KEPT_USER = 'ada-keeps-her-data';
export const DELETED_USER = 'erin-leaves';
/** Whose generation the provider refuses: the gallery shows a failure with its reason and no image. */
export const REFUSED_USER = 'fay-was-refused';
export const REFUSAL = 'The provider refused this photo: try another one.';
/** The first and second versions of the prompt differ in these template lines. */
export const TEMPLATE_V1 = 'Turn {subject} into a hand-painted anime portrait';
export const TEMPLATE_V2 = 'Turn {subject} into a watercolour anime portrait at dusk';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/** Screenshots are written only when asked for, so that test runs do not change the repository. */
export const SCREENSHOTS = process.env.ADMIN_SCREENSHOTS === '1';

export interface ConsoleFixture {
  api: TestApi;
  base: string;
  browser: Browser;
  page: Page;
  /** Takes and keeps a doctor report of this server now, as the scheduler does every 5 minutes. */
  refreshDoctorReport(): Promise<void>;
  close(): Promise<void>;
}

async function refreshDoctorReport(api: TestApi): Promise<void> {
  await saveDoctorReport(api.db.sql, await runDoctor(api.config, { timeoutMs: 5000 }));
}

const refusingProvider: ImageProvider = {
  name: 'refusing',
  generate: () => Promise.reject(new PermanentProviderError(REFUSAL)),
};

/**
 * A prompt with two versions, a trend with an example, a finished generation for each of two users, and a
 * refused one, the newest, for a third.
 */
async function seed(api: TestApi, redisUrl: string): Promise<void> {
  await createTrendWithPrompt(api, 'ghibli', PROMPT);
  const v2 = SAMPLE_PROMPT(PROMPT, TEMPLATE_V2).replace('model: gpt-image-1', 'model: local');
  const put = await api.app.inject({
    method: 'PUT',
    url: `/api/v1/prompts/${PROMPT}`,
    headers: { ...api.admin, 'content-type': 'application/yaml' },
    payload: v2.replace('size: medium', 'size: small'),
  });
  if (put.statusCode !== 200) throw new Error(`prompt v2: ${put.body}`);
  const example = await api.app.inject({
    method: 'PUT',
    url: '/api/v1/trends/ghibli/example',
    headers: { ...api.admin, 'content-type': 'image/jpeg' },
    payload: await samplePhoto(7, 256),
  });
  if (example.statusCode >= 300) throw new Error(`example: ${example.body}`);
  const worker: TestWorker = startTestWorker(api, { redisUrl });
  try {
    for (const [i, user] of [KEPT_USER, DELETED_USER].entries()) {
      const created = await postGeneration(
        api,
        { trend: 'ghibli', user, variants: '2' },
        await samplePhoto(i + 1),
      );
      if (created.statusCode !== 202) throw new Error(`generation: ${JSON.stringify(created.body)}`);
      await waitForStatus(api, created.body.id, ['succeeded', 'failed']);
    }
  } finally {
    await worker.close();
  }
  const refusing = startTestWorker(api, { redisUrl, provider: refusingProvider });
  try {
    const refused = await postGeneration(api, { trend: 'ghibli', user: REFUSED_USER }, await samplePhoto(3));
    if (refused.statusCode !== 202) throw new Error(`generation: ${JSON.stringify(refused.body)}`);
    await waitForStatus(api, refused.body.id, ['failed']);
  } finally {
    await refusing.close();
  }
  // What the scheduler keeps for the Protection page: its doctor report (a real one, of this server) and a
  // week of recovery-point lag (synthetic, every half hour: no WAL streams in this test).
  await refreshDoctorReport(api);
  await api.db.sql`
    insert into recovery_point_samples (taken_at, source, target, lag_seconds)
    select now() - make_interval(mins => m), source, 'local', 0.4 + (m % 97) / 60.0 + (source = 'objects')::int
           + case when m between 4000 and 4300 then (m - 4000) / 10.0 else 0 end
    from generate_series(1, 10080, 30) as m, unnest(array['postgres', 'objects']) as source`;
  // A second, hidden trend without an example: the gallery shows both kinds.
  await api.app.inject({
    method: 'POST',
    url: '/api/v1/trends',
    headers: api.admin,
    payload: { slug: 'pixel', title: 'Pixel art', prompt: PROMPT, status: 'hidden' },
  });
}

export async function startConsole(
  options: { beforeReady?: (app: FastifyInstance) => void } = {},
): Promise<ConsoleFixture> {
  // The page the server serves is the one this checkout builds.
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build-admin.mjs')], { stdio: 'pipe' });
  const temp = tempDir('admin-console');
  // A Redis of its own: a backup takes an RDB of it, and the shared test Redis holds other files' keys.
  const redis = new EmbeddedRedis({ root: temp.dir, port: 0, appendfsync: 'everysec' });
  const running = await redis.start();
  const api = await startTestApi(
    { REDIS_URL: running.url },
    { redisUrl: running.url, ...(options.beforeReady ? { beforeReady: options.beforeReady } : {}) },
  );
  let browser: Browser | undefined;
  try {
    await seed(api, running.url);
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    // Debian's package by default; CHROMIUM_PATH names another build (macOS, a snap).
    const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
    if (!existsSync(executablePath)) {
      throw new Error(
        `The console's browser tests need Chromium at ${executablePath}: apt-get install -y chromium, or set CHROMIUM_PATH.`,
      );
    }
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: base });
    const page = await context.newPage();
    const opened = browser;
    return {
      api,
      base,
      browser: opened,
      page,
      refreshDoctorReport: () => refreshDoctorReport(api),
      close: async () => {
        await opened.close();
        await api.close();
        await redis.stop();
        temp.remove();
      },
    };
  } catch (error) {
    await browser?.close();
    await api.close();
    await redis.stop();
    temp.remove();
    throw error;
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  const dir = path.join(ROOT, 'docs/admin');
  mkdirSync(dir, { recursive: true });
  // A picture of the page as a person sees it: every preview loaded (or replaced by its placeholder), lazy
  // ones below the fold included, which a full-page shot would otherwise catch as empty boxes.
  await page.evaluate(
    'document.querySelectorAll("img[loading=lazy]").forEach((img) => { img.loading = "eager"; })',
  );
  await page.waitForFunction(
    '[...document.images].every((img) => img.complete) && !document.querySelector(\'[data-state="loading"]\')',
    undefined,
    { timeout: 10_000 },
  );
  // Animations and the caret would make each run's picture differ.
  await page.screenshot({
    path: path.join(dir, `${name}.png`),
    fullPage: true,
    animations: 'disabled',
    caret: 'hide',
  });
}
