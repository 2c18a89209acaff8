import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const COMPOSE_FILE = path.join(ROOT, 'deploy/docker-compose.yml');
export const ENV_EXAMPLE = path.join(ROOT, 'deploy/.env.example');
export const DOCKERFILE = path.join(ROOT, 'deploy/Dockerfile');

export const read = (file: string): string => readFileSync(file, 'utf8');

/** promtool from $PROMTOOL, the folder .ci/run unpacks Debian's package into, or PATH. */
export function findPromtool(): string {
  const candidates = [process.env.PROMTOOL, path.join(ROOT, '.tools/prometheus/usr/bin/promtool')];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  if (spawnSync('promtool', ['--version']).status === 0) return 'promtool';
  throw new Error(
    "promtool is missing: run `bash .ci/run`, or unpack Debian's prometheus package without installing the service (in the project folder, as root: `apt-get update && apt-get download prometheus && dpkg -x prometheus_*.deb .tools/prometheus && rm prometheus_*.deb`), or set PROMTOOL to its path.",
  );
}

/** One `${NAME...}` reference in the Compose file: `:-` default, `:?` required (with its message), or neither. */
export interface VariableUse {
  name: string;
  kind: 'default' | 'required' | 'plain';
  /** The default after `:-` (or `-`), the message after `:?` (or `?`). */
  value: string;
  text: string;
}

/** Every variable reference in a Compose file's text; `$$` is Compose's escape for a literal `$`. */
export function variableUses(text: string): { uses: VariableUse[]; bare: string[] } {
  // Comment lines are prose; `$$` is an escaped literal `$`.
  const unescaped = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replaceAll('$$', '');
  const uses: VariableUse[] = [];
  for (const m of unescaped.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g)) {
    const op = m[2] ?? '';
    uses.push({
      name: m[1]!,
      kind: op.endsWith('-') ? 'default' : op.endsWith('?') ? 'required' : 'plain',
      value: m[3] ?? '',
      text: m[0],
    });
  }
  const bare = [...unescaped.matchAll(/\$(?!\{)[A-Za-z_][A-Za-z0-9_]*/g)].map((m) => m[0]);
  return { uses, bare };
}

/** Compose's interpolation of one string: `${VAR:-default}`, `${VAR:?message}`, `${VAR}`, `$VAR`, `$$`. */
export function interpolate(value: string, env: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole, braced?: string, colon?: string, op?: string, arg?: string, bareName?: string) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bareName)!;
      const current = env[name];
      const missing = current === undefined || (colon === ':' && current === '');
      if (op === '-') return missing ? (arg ?? '') : current!;
      if (op === '?' && missing) throw new Error(`required variable ${name} is missing: ${arg}`);
      return current ?? '';
    },
  );
}

function interpolateTree(node: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, env));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)]));
  }
  return node;
}

export type Service = {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  profiles?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  volumes?: string[];
  ports?: string[];
  restart?: string;
  stop_grace_period?: string;
};
export type ComposeDocument = { services: Record<string, Service>; volumes: Record<string, unknown> };

/** The Compose file as YAML (anchors and `<<` merges resolved), optionally interpolated with `env`. */
export function loadCompose(env?: Record<string, string | undefined>): ComposeDocument {
  const raw = parse(read(COMPOSE_FILE), { merge: true }) as ComposeDocument;
  return (env ? interpolateTree(raw, env) : raw) as ComposeDocument;
}

/** The services that run the trendgen image (the ones whose `command` is a trendgen command). */
export function appServices(doc: ComposeDocument): Array<[string, Service]> {
  return Object.entries(doc.services).filter(([, s]) => s.build !== undefined);
}

/** deploy/.env.example: each `KEY=value` line (also commented out as `#KEY=value`) with the comment above it. */
export interface Documented {
  name: string;
  value: string;
  commented: boolean;
  description: string;
  line: number;
}

export function documentedVariables(): Map<string, Documented> {
  const lines = read(ENV_EXAMPLE).split('\n');
  const out = new Map<string, Documented>();
  lines.forEach((line, index) => {
    const m = /^(#?)([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) return;
    // The description is the block of `# ` lines above it, past neighbouring settings that share it.
    let i = index - 1;
    while (i >= 0 && /^#?[A-Z][A-Z0-9_]*=/.test(lines[i]!)) i--;
    const description: string[] = [];
    while (i >= 0 && /^# /.test(lines[i]!)) description.unshift(lines[i--]!.slice(2));
    let value = m[3]!.trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out.set(m[2]!, {
      name: m[2]!,
      value,
      commented: m[1] === '#',
      description: description.join(' '),
      line: index + 1,
    });
  });
  return out;
}
