import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { samplePhoto } from '../support/generation.ts';
import { type ServedApi, startServedApi } from '../support/served.ts';
import { findPromtool, ROOT } from './deploy-files.ts';

const ALERTS = path.join(ROOT, 'deploy/prometheus/alerts.yml');
const ALERT_TESTS = path.join(ROOT, 'deploy/prometheus/alerts.test.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/trendgen.json');
/** Added by the continuous-protection work; the rules and the dashboard already watch it. */
const LAG_METRIC = 'trendgen_recovery_point_lag_seconds';
/** Prometheus's own: whether the scrape worked. */
const PROMETHEUS_METRICS = ['up'];

function promtool(args: string[], input?: string) {
  const result = spawnSync(findPromtool(), args, { input, encoding: 'utf8', cwd: ROOT });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Metric families in Prometheus text, with the series names a histogram or summary adds. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name! + s);
  }
  return names;
}

const PROMQL_WORDS = new Set(
  'by without on ignoring group_left group_right bool and or unless offset inf nan'.split(' '),
);

/** The metric names a PromQL expression selects: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\$\{?\w+\}?/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = [...stripped.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?/g)]
    .filter(([, name, call]) => !call && !PROMQL_WORDS.has(name!.toLowerCase()))
    .map(([, name]) => name!);
  return [...new Set(names)];
}

function dashboardExprs(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ query?: { query?: string } | string }> };
  };
  const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((t) => t.expr));
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === 'string' ? undefined : variable.query?.query;
    const inner = query && /^label_values\((\w+)/.exec(query);
    if (inner) exprs.push(inner[1]!);
  }
  return exprs;
}

function alertExprs(): string[] {
  const rules = parse(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> };
  return rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr));
}

/** Rows that give every metric family samples: a finished generation, counters, backups, a drill, a doctor report. */
async function seed(api: ServedApi): Promise<void> {
  const put = await fetch(`${api.baseUrl}/api/v1/prompts/ghibli-portrait`, {
    method: 'PUT',
    headers: { ...api.admin, 'content-type': 'application/yaml' },
    body: SAMPLE_PROMPT('ghibli-portrait'),
  });
  expect(put.status).toBe(201);
  const trend = await fetch(`${api.baseUrl}/api/v1/trends`, {
    method: 'POST',
    headers: { ...api.admin, 'content-type': 'application/json' },
    body: JSON.stringify({ slug: 'ghibli', title: 'Ghibli portrait', prompt: 'ghibli-portrait' }),
  });
  expect(trend.status).toBe(201);
  for (const user of ['ann', 'bob']) {
    const form = new FormData();
    form.set('trend', 'ghibli');
    form.set('user', user);
    form.set('variants', '1');
    form.set('photo', new Blob([new Uint8Array(await samplePhoto(2))], { type: 'image/jpeg' }), 'p.jpg');
    const accepted = await fetch(`${api.baseUrl}/api/v1/generations`, {
      method: 'POST',
      headers: api.admin,
      body: form,
    });
    expect(accepted.status).toBe(202);
  }
  // No worker runs here: one generation is finished by hand, so the time summary has quantiles to show.
  const { sql } = api.db;
  await sql`update generations set status = 'succeeded', started_at = created_at + interval '2 seconds',
            finished_at = created_at + interval '9 seconds' where user_id = 'ann'`;
  await sql`insert into ops_counters (name, label, value)
            values ('provider_errors', 'transient', 2), ('reconciler_repairs', 'requeued', 1)`;
  await sql`insert into backup_runs (started_at, finished_at, status, targets, bytes_added)
            values (now() - interval '1 minute', now(), 'succeeded',
                    ${sql.json([{ name: 'local', ok: true, snapshots: 1, repositoryBytes: 4096 }])}, 4096)`;
  await sql`insert into drill_runs (finished_at, status, snapshot_id, target, recovery_seconds)
            values (now(), 'passed', 'abc123', 'local', 12.5)`;
  await sql`insert into doctor_reports (id, report)
            values (1, ${sql.json({ ok: true, checks: [{ id: 'a', status: 'OK', message: '' }] })})`;
}

describe('Prometheus and Grafana: the linter, the alert rules and the dashboard', () => {
  let api: ServedApi;
  let metrics: string;
  beforeAll(async () => {
    api = await startServedApi();
    await seed(api);
    await fetch(`${api.baseUrl}/healthz`);
    metrics = await (await fetch(`${api.baseUrl}/metrics`)).text();
  });
  afterAll(async () => api?.stop());

  it('/metrics of a running `trendgen serve` passes `promtool check metrics`', () => {
    const check = promtool(['check', 'metrics'], metrics);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
    expect(metrics).toContain('# TYPE trendgen_generation_seconds summary');
    expect(metrics).toMatch(/^trendgen_generation_seconds\{phase="finish",quantile="0.95"\} 9$/m);
    expect(metrics).toMatch(/^trendgen_generation_seconds_count\{phase="finish"\} 1$/m);
    expect(metrics).toMatch(/^trendgen_generation_seconds_sum\{phase="queue"\} 2$/m);
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(metrics).not.toContain('trendgen_process_');
    expect(metrics).toMatch(/^trendgen_backup_stale\{target="local"\} 0$/m);
    expect(metrics).toMatch(/^trendgen_filesystem_avail_bytes\{dir="backup_dir",path="[^"]+"\} \d+/m);
  });

  it('the alert rules pass `promtool check rules` and their unit tests', () => {
    const check = promtool(['check', 'rules', ALERTS]);
    expect(check.output).toContain('SUCCESS');
    expect(check.status).toBe(0);
    const tests = promtool(['test', 'rules', ALERT_TESTS]);
    expect(tests.output).toContain('SUCCESS');
    expect(tests.status).toBe(0);
  });

  it('every metric the alert rules and the dashboard query is one trendgen exports', () => {
    const known = new Set([...exportedNames(metrics), LAG_METRIC, ...PROMETHEUS_METRICS]);
    const used = [...alertExprs(), ...dashboardExprs()].flatMap((expr) =>
      metricNames(expr).map((name) => ({ expr, name })),
    );
    expect(used.length).toBeGreaterThan(30);
    expect(used.filter(({ name }) => !known.has(name))).toEqual([]);
    // Each alert the issue asks for, and the lag metric, is watched.
    const alerts = alertExprs().join('\n');
    for (const name of [
      'trendgen_backup_stale',
      'trendgen_backup_last_run',
      'trendgen_drill_last',
      LAG_METRIC,
      'trendgen_filesystem_avail_bytes',
      'trendgen_prompt_files',
      'trendgen_generations',
    ])
      expect(alerts).toContain(name);
  });

  it('the PromQL name reader finds selected metrics and skips functions, labels and keywords', () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job=~"$job",x="b_c"}[5m]))) / on() b_total offset 5m',
      ),
    ).toEqual(['a_bucket', 'b_total']);
  });
});
