import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './tools.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalS: number;
  /** Where the main thread's time went, by category (idle = waiting for I/O, fsync, the thread pool, children). */
  categories: Array<{ name: string; seconds: number }>;
  functions: Array<{ name: string; seconds: number }>;
}

function where(url: string): string {
  if (!url) return '';
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  if (file.startsWith(PROJECT_ROOT)) {
    const rel = path.relative(PROJECT_ROOT, file);
    const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(rel);
    return pkg ? pkg[1]! : rel;
  }
  return file;
}

function category(node: CpuProfileNode): string {
  const name = node.callFrame.functionName;
  if (name === '(idle)') return 'idle (waiting: I/O, fsync, thread pool, child processes)';
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)') return 'V8/native (program)';
  return where(node.callFrame.url) || `native: ${name || '(anonymous)'}`;
}

/** Self time per category and per function of one .cpuprofile (main thread only). */
export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0));
  }
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, micros] of self) {
    const node = byId.get(id)!;
    const cat = category(node);
    categories.set(cat, (categories.get(cat) ?? 0) + micros);
    const { functionName, url, lineNumber } = node.callFrame;
    // Line numbers of tsx-transformed sources do not match the .ts files: name and file say enough there.
    const file = where(url);
    const line = file.startsWith('src/') || file.startsWith('bin/') ? '' : `:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${url ? ` (${file}${line})` : ''}`;
    functions.set(key, (functions.get(key) ?? 0) + micros);
  }
  const sorted = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => ({ name, seconds: micros / 1e6 }));
  return {
    file,
    totalS: (profile.endTime - profile.startTime) / 1e6,
    categories: sorted(categories),
    functions: sorted(functions),
  };
}

/**
 * The main thread's profile in a folder written by `node --cpu-prof --cpu-prof-dir` (tsx's loader thread
 * writes one too): the one that lasted longest.
 */
export function mainThreadProfile(dir: string): string | undefined {
  let best: { file: string; span: number } | undefined;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    const file = path.join(dir, name);
    const { startTime, endTime } = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (!best || endTime - startTime > best.span) best = { file, span: endTime - startTime };
  }
  return best?.file;
}

export function formatProfile(label: string, summary: ProfileSummary): string {
  const lines = [`##### ${label} (main thread, ${summary.totalS.toFixed(1)} s profiled)`, ''];
  lines.push('| Where (self time) | s |', '|---|---:|');
  for (const c of summary.categories) lines.push(`| ${c.name} | ${c.seconds.toFixed(2)} |`);
  lines.push('', '| Function (self time) | s |', '|---|---:|');
  for (const f of summary.functions) lines.push(`| \`${f.name}\` | ${f.seconds.toFixed(2)} |`);
  return `${lines.join('\n')}\n`;
}
