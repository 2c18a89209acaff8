import { percentile } from './proc.ts';

export interface LagSeries {
  label: string;
  /** Seconds between each sample and the newest moment recoverable at it. */
  seconds: number[];
}

export interface PgbenchFigures {
  tps: number;
  latencyMs: number;
  stddevMs: number;
}

export interface LoadPhase {
  name: 'off' | 'async' | 'sync';
  /** CPU of the `trendgen protect` process and its pg_receivewal during the phase. */
  protectCpuS: number | undefined;
  /** CPU of the PostgreSQL server (its backends, walsender, archiver and pgBackRest's archive-push under it). */
  serverCpuS: number;
  /** How much each repository grew during the phase (trendgen's without the receiver's folder). */
  repoGrowthMb?: { trendgen: number; pgBackRest: number };
  durationS: number;
  walMbPerS: number;
  pgbench: PgbenchFigures | undefined;
  lags: LagSeries[];
  /** trendgen's own `lagSeconds` as `trendgen status` reports it (now − recoverable_until), beside the bench's method. */
  reported: number[];
  load: number;
}

export interface TimedStep {
  label: string;
  seconds: number;
  /** The fastest and slowest of several runs, when `seconds` is their median. */
  range?: [number, number];
  /** CPU of the tool's own processes (not the PostgreSQL server's), when measured. */
  cpuS?: number;
  detail: string;
}

export interface ApiMode {
  mode: 'off' | 'async' | 'sync';
  promptPut: number[];
  exampleUpload: number[];
  errors: number;
  /** p50 of prompt PUTs and of uploads in each round, in the order measured. */
  rounds: number[][];
}

export interface PitrReport {
  date: string;
  scale: string;
  machine: string;
  versions: string;
  loads: { before: number[]; after: number[]; during: Array<{ what: string; load: number }> };
  database: string;
  loadShape: string;
  phases: LoadPhase[];
  baseBackups: TimedStep[];
  restores: TimedStep[];
  restoreCheck: string;
  api: ApiMode[] | undefined;
  apiShape: string;
  notes: string[];
  rerun: string;
}

const f = (n: number | undefined, digits = 2) =>
  n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;

function lagTable(phases: LoadPhase[]): string[] {
  const out = [
    '| Phase (write load) | What is recoverable | p50 s | p99 s | max s | samples |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const phase of phases) {
    for (const lag of phase.lags) {
      out.push(
        `| ${phase.name} | ${lag.label} | ${f(percentile(lag.seconds, 50))} | ${f(percentile(lag.seconds, 99))} | ` +
          `${f(Math.max(...lag.seconds))} | ${lag.seconds.length} |`,
      );
    }
    if (!phase.reported.length) continue;
    out.push(
      `| ${phase.name} | trendgen status's \`lagSeconds\` (now − recoverable_until) | ${f(percentile(phase.reported, 50))} | ` +
        `${f(percentile(phase.reported, 99))} | ${f(Math.max(...phase.reported))} | ${phase.reported.length} |`,
    );
  }
  return out;
}

function apiTable(api: ApiMode[]): string[] {
  const off = api.find((m) => m.mode === 'off');
  const out = [
    '| Protection | prompt PUT p50 ms | p99 ms | upload p50 ms | p99 ms | p50 vs off (PUT / upload) | same-round p50 vs off, median of rounds (PUT / upload) | p99 vs off (PUT / upload) | requests | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  // The modes of one round run back to back: their ratio leaves out what the machine did between rounds.
  const sameRound = (m: ApiMode, i: 0 | 1) =>
    percentile(
      m.rounds.flatMap((round, r) => {
        const [base, value] = [off?.rounds[r]?.[i], round[i]];
        return base && value !== undefined && Number.isFinite(value) ? [value / base] : [];
      }),
      50,
    );
  for (const m of api) {
    const p = (xs: number[], q: number) => percentile(xs, q);
    out.push(
      `| ${m.mode} | ${f(p(m.promptPut, 50), 1)} | ${f(p(m.promptPut, 99), 1)} | ${f(p(m.exampleUpload, 50), 1)} | ` +
        `${f(p(m.exampleUpload, 99), 1)} | ${ratio(p(m.promptPut, 50), off && p(off.promptPut, 50))} / ` +
        `${ratio(p(m.exampleUpload, 50), off && p(off.exampleUpload, 50))} | ` +
        `${ratio(sameRound(m, 0), 1)} / ${ratio(sameRound(m, 1), 1)} | ` +
        `${ratio(p(m.promptPut, 99), off && p(off.promptPut, 99))} / ` +
        `${ratio(p(m.exampleUpload, 99), off && p(off.exampleUpload, 99))} | ` +
        `${m.promptPut.length + m.exampleUpload.length} | ${m.errors} |`,
    );
  }
  return out;
}

function stepTable(steps: TimedStep[], baseline: string | undefined): string[] {
  const base = steps.find((s) => s.label === baseline)?.seconds;
  const out = [
    `| Tool | seconds | ${baseline ? `vs ${baseline} | ` : ''}tool CPU s | detail |`,
    `|---|---:|${baseline ? '---:|' : ''}---:|---|`,
  ];
  for (const s of steps) {
    out.push(
      `| ${s.label} | ${f(s.seconds, 1)}${s.range ? ` (${f(s.range[0], 1)}–${f(s.range[1], 1)})` : ''} | ${baseline ? `${ratio(s.seconds, base)} | ` : ''}${f(s.cpuS, 1)} | ${s.detail} |`,
    );
  }
  return out;
}

export function renderPitrReport(r: PitrReport): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const out: string[] = [
    `### Scale \`${r.scale}\`: ${r.database}`,
    '',
    `${r.date}; ${r.machine}; ${r.versions}.`,
    `Load average (1/5/15 min) before ${load(r.loads.before)}, after ${load(r.loads.after)}; ` +
      `1-minute load at the end of each measured step: ${r.loads.during.map((d) => `${d.what} ${d.load.toFixed(1)}`).join(', ')}.`,
    '',
    `**Write load**: ${r.loadShape}`,
    '',
    '#### Recovery-point lag under load (sampled every 200 ms; the same LSN→time method for both tools)',
    '',
    ...lagTable(r.phases),
    '',
    '| Phase | WAL MB/s | pgbench tps | pgbench latency avg ms (stddev) | latency vs off | trendgen protect CPU s | PostgreSQL CPU s | repo growth MB (trendgen / pgBackRest) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...r.phases.map(
      (p) =>
        `| ${p.name} | ${f(p.walMbPerS)} | ${f(p.pgbench?.tps, 1)} | ${f(p.pgbench?.latencyMs)} (${f(p.pgbench?.stddevMs)}) | ` +
        `${ratio(p.pgbench?.latencyMs, r.phases.find((x) => x.name === 'off')?.pgbench?.latencyMs)} | ${f(p.protectCpuS, 1)} | ${f(p.serverCpuS, 1)} | ` +
        `${f(p.repoGrowthMb?.trendgen, 1)} / ${f(p.repoGrowthMb?.pgBackRest, 1)} |`,
    ),
    '',
    '#### Base backup (under the same write load)',
    '',
    ...stepTable(r.baseBackups, 'pgBackRest'),
    '',
    '#### Restore to the same moment',
    '',
    ...stepTable(r.restores, 'pgBackRest'),
    '',
    r.restoreCheck,
  ];
  if (r.api) {
    out.push(
      '',
      '#### Request latency against a real `trendgen serve`',
      '',
      r.apiShape,
      '',
      ...apiTable(r.api),
    );
    out.push(
      '',
      `p50 per round (prompt PUT / upload, ms), to show the spread on this shared machine: ${r.api
        .map((m) => `${m.mode} ${m.rounds.map(([a, b]) => `${f(a, 0)}/${f(b, 0)}`).join(', ')}`)
        .join('; ')}.`,
    );
  }
  if (r.notes.length) out.push('', ...r.notes.map((n) => `- ${n}`));
  out.push('', `Rerun: \`${r.rerun}\``);
  return `${out.join('\n')}\n`;
}
