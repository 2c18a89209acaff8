import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsoleFixture,
  DELETED_USER,
  KEPT_USER,
  PROMPT,
  REFUSAL,
  REFUSED_USER,
  screenshot,
  startConsole,
  TEMPLATE_V1,
  TEMPLATE_V2,
} from './console-fixture.ts';

// The operator console in real Chromium against the real server: the tests run in order, as an operator would.
describe('operator console (/admin)', () => {
  let fx: ConsoleFixture;
  beforeAll(async () => {
    fx = await startConsole();
  }, 120_000);
  afterAll(async () => {
    await fx?.close();
  });

  const admin = () => fx.api.admin;

  it('refuses a wrong token with the server’s message', async () => {
    const { page } = fx;
    await page.goto('/admin/');
    await page.getByLabel('Admin token').fill('not-the-admin-token-at-all');
    await page.getByRole('button', { name: 'Log in' }).click();
    const refused = await page.request.post('/api/v1/session', {
      data: { token: 'not-the-admin-token-at-all' },
    });
    expect(refused.status()).toBe(401);
    const message = ((await refused.json()) as { error: { message: string } }).error.message;
    await expect.poll(() => page.getByRole('alert').textContent()).toBe(message);
    await screenshot(page, 'login');
  });

  it('logs in with the admin token, by keyboard alone', async () => {
    const { page } = fx;
    await page.getByLabel('Admin token').fill('');
    await page.getByLabel('Admin token').focus();
    await page.keyboard.type(fx.api.adminToken);
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Pages' }).waitFor();
    await page.getByRole('heading', { name: 'Protection', level: 2 }).waitFor();
    // The doctor's checks and the catalog's cards are there, each with a word, not only a colour.
    const checks = page.locator('[aria-labelledby="card-doctor"] .status-item');
    await checks.first().waitFor({ state: 'attached' });
    for (const text of await checks.locator('.badge').allTextContents())
      expect(text).toMatch(/^. (OK|WARN|FAIL)$/);
    // Tab reaches the skip button, then the first page link, and the focus is drawn.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate<[string, string]>(
      '[document.activeElement.textContent, getComputedStyle(document.activeElement).outlineStyle]',
    );
    expect(focused).toEqual(['Protection', 'solid']);
  });

  it('starts a backup from the page; its snapshot appears on the Protection timeline', async () => {
    const { page } = fx;
    await page.getByRole('link', { name: 'Snapshots' }).click();
    await page.getByRole('button', { name: 'Back up now' }).click();
    const row = page.locator('tr[data-run-status="succeeded"]').first();
    await row.waitFor({ timeout: 60_000 });
    const view = (await (await fx.page.request.get('/api/v1/backups', { headers: admin() })).json()) as {
      backups: Array<{ snapshotId: string; status: string }>;
    };
    const snapshotId = view.backups[0]!.snapshotId;
    expect(view.backups[0]!.status).toBe('succeeded');
    expect(await row.textContent()).toContain(snapshotId.slice(0, 12));

    await page.getByRole('link', { name: 'Protection' }).click();
    const timeline = page.getByTestId('timeline');
    await expect.poll(() => timeline.textContent(), { timeout: 10_000 }).toContain(snapshotId.slice(0, 12));
    // uPlot draws in an effect after the render that wrote the text: the canvas comes a frame later.
    await expect.poll(() => timeline.locator('canvas').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    // The lag lines, drawn and also written out for those who cannot see the chart.
    expect(await timeline.getByRole('table', { name: /lag/ }).textContent()).toContain('postgres → local');
  });

  it('runs a drill from the page and shows it pass', async () => {
    const { page } = fx;
    await page.getByRole('link', { name: 'Snapshots' }).click();
    await page.getByRole('button', { name: 'Run drill' }).click();
    const passed = page.locator('li[data-drill-status="passed"]').first();
    await passed.waitFor({ timeout: 60_000 });
    expect(await passed.textContent()).toContain('PASS');
    expect(await passed.textContent()).toMatch(/Recovery\s*[\d.]+ (s|min)/);
    await screenshot(page, 'snapshots');
    // The scheduler's next doctor report (every 5 minutes) sees the backup and the drill.
    await fx.refreshDoctorReport();
    await page.getByRole('link', { name: 'Protection' }).click();
    await page.getByTestId('timeline').locator('canvas').first().waitFor();
    await page.getByText('Last drill passed').waitFor();
    const drillCheck = page.locator('[aria-labelledby="card-doctor"] .status-item', {
      hasText: 'drill.last',
    });
    expect(await drillCheck.locator('.badge').textContent()).toContain('OK');
    await screenshot(page, 'protection');
  });

  it('is readable 375 px wide: nothing wider than the screen', async () => {
    const { page } = fx;
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      await page.reload();
      await page.getByTestId('timeline').locator('canvas').first().waitFor();
      // A string: this file is compiled without the DOM's types.
      const [pageWidth, screenWidth] = await page.evaluate<[number, number]>(
        '[document.documentElement.scrollWidth, window.innerWidth]',
      );
      expect(pageWidth).toBeLessThanOrEqual(screenWidth);
      await screenshot(page, 'protection-375');
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it('diffs two prompt versions side by side and restores the older one', async () => {
    const { page } = fx;
    await page.getByRole('link', { name: 'Prompts' }).click();
    await page.getByRole('link', { name: PROMPT }).click();
    const diff = page.getByTestId('prompt-diff');
    await diff.waitFor();
    await expect.poll(() => diff.locator('.diff-removed').textContent()).toContain(TEMPLATE_V1);
    expect(await diff.locator('.diff-added').textContent()).toContain(TEMPLATE_V2);
    await screenshot(page, 'prompts');

    await page.getByRole('button', { name: 'Restore version 1' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Restore version 1' }).click();
    await page.getByRole('status').filter({ hasText: 'is current again, as version 3' }).waitFor();

    const current = await page.request.get(`/api/v1/prompts/${PROMPT}`, { headers: admin() });
    const prompt = (await current.json()) as { version: number; content: string };
    expect(prompt.version).toBe(3);
    expect(prompt.content).toContain(TEMPLATE_V1);
    expect(prompt.content).not.toContain(TEMPLATE_V2);
  });

  it('shows trends with example previews and every user’s newest generations, a user id only filtering', async () => {
    const { page } = fx;
    const listed = page.waitForResponse((r) => /\/api\/v1\/generations\?limit=24$/.test(r.url()));
    await page.getByRole('link', { name: 'Gallery' }).click();
    expect((await listed).status()).toBe(200);
    // No user id typed: the generations of several users, newest first, each saying whose and which trend.
    const items = page.locator('li.generation');
    await expect.poll(() => items.count()).toBe(3);
    const users = await page.locator('.generation-user').allTextContents();
    expect(users).toEqual([REFUSED_USER, DELETED_USER, KEPT_USER]);
    const refused = items.filter({ hasText: REFUSED_USER });
    expect(await refused.getAttribute('data-generation-status')).toBe('failed');
    expect(await refused.locator('.error-text').textContent()).toBe(REFUSAL);
    expect(await refused.locator('.no-image').textContent()).toBe('Failed: no image');
    expect(await items.filter({ hasText: KEPT_USER }).textContent()).toContain('ghibli');

    const variants = page.getByRole('img', { name: /^Variant \d of ghibli for / });
    await expect.poll(() => variants.count()).toBe(4);
    // Only previews reach the page: the worker's stored WebP, not the full image.
    for (const src of await variants.evaluateAll((imgs) => imgs.map((img) => img.getAttribute('src'))))
      expect(src).toMatch(/^\/api\/v1\/objects\/preview\/.+\.webp$/);
    const example = page.getByRole('img', { name: 'Example of Ghibli portrait' });
    expect(await example.getAttribute('src')).toMatch(/^\/api\/v1\/objects\/example\/.+\?preview=1$/);
    expect(await example.getAttribute('loading')).toBe('lazy');
    // Every preview loads through the session cookie, as a small image: no tile stays an empty box.
    const widths = (images: typeof variants) =>
      images.evaluateAll((imgs) =>
        imgs.map((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      );
    const all = page.locator('img');
    await expect.poll(async () => Math.min(...(await widths(all))), { timeout: 10_000 }).toBeGreaterThan(0);
    // The server's ?preview=1 is at most 320 px; the worker stores its previews at most 512 px.
    expect(Math.max(...(await widths(example)))).toBeLessThanOrEqual(320);
    expect(Math.max(...(await widths(variants)))).toBeLessThanOrEqual(512);
    expect(await page.locator('[data-state="loading"], [data-state="failed"]').count()).toBe(0);
    await screenshot(page, 'gallery');

    // A user id narrows the list to that user; clearing it shows everyone's again.
    await page.getByLabel('User id').fill(KEPT_USER);
    await page.getByRole('button', { name: 'Show generations' }).click();
    await expect.poll(() => page.locator('.generation-user').allTextContents()).toEqual([KEPT_USER]);
    await page.getByLabel('User id').fill('');
    await expect.poll(() => items.count()).toBe(3);

    // A preview that does not arrive leaves a placeholder that says so, not an empty box.
    await page.route('**/api/v1/objects/preview/**', (route) => route.fulfill({ status: 404 }));
    try {
      await page.reload();
      await expect.poll(() => page.getByText('Preview did not load').count()).toBe(4);
      expect(await variants.count()).toBe(0);
    } finally {
      await page.unroute('**/api/v1/objects/preview/**');
    }
  });

  it('deletes a user’s data after the user id is typed again', async () => {
    const { page } = fx;
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByLabel('User id', { exact: true }).fill(DELETED_USER);
    await page.getByRole('button', { name: 'Show what would be deleted' }).click();
    const summary = page.getByTestId('user-summary');
    await summary.waitFor();
    expect(await summary.textContent()).toMatch(/Generations\s*1/);
    const remove = page.getByRole('button', { name: `Delete all data of ${DELETED_USER}` });
    expect(await remove.isDisabled()).toBe(true);
    await page.getByLabel('Type the user id again to confirm').fill(DELETED_USER);
    await screenshot(page, 'users');
    await remove.click();
    await page.getByRole('status').filter({ hasText: 'Deleted' }).waitFor();

    const left = await page.request.get(`/api/v1/generations?user=${DELETED_USER}`, { headers: admin() });
    expect(((await left.json()) as { generations: unknown[] }).generations).toEqual([]);
    const kept = await page.request.get(`/api/v1/generations?user=${KEPT_USER}`, { headers: admin() });
    expect(((await kept.json()) as { generations: unknown[] }).generations).toHaveLength(1);
  });

  it('answers 401 without the cookie and 403 to a change with a forged CSRF token', async () => {
    const { page } = fx;
    const statuses = await page.evaluate(async () => {
      const anonymous = await fetch('/api/v1/backups', { credentials: 'omit' });
      const forged = await fetch('/api/v1/backups', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'x-csrf-token': 'forged-token' },
      });
      const withCookie = await fetch('/api/v1/backups', { credentials: 'same-origin' });
      return [anonymous.status, forged.status, withCookie.status];
    });
    expect(statuses).toEqual([401, 403, 200]);
  });

  it('logs out: the cookie no longer opens anything', async () => {
    const { page } = fx;
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Admin token').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/backups')).status);
    expect(status).toBe(401);
  });
});
