import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One import of one source file: where it points, and whether it is a dynamic `import()`. */
export interface SourceImport {
  from: string;
  to: string;
  dynamic: boolean;
}

export interface SourceFile {
  /** Relative to `src/`, with forward slashes: `vault/catalog.ts`. */
  file: string;
  text: string;
}

export function readSources(srcDir: string): SourceFile[] {
  return readdirSync(srcDir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => ({
      file: name.split(path.sep).join('/'),
      text: readFileSync(path.join(srcDir, name), 'utf8'),
    }))
    .sort((a, b) => a.file.localeCompare(b.file));
}

// Static imports and re-exports, type-only ones included (they are dependencies a reader follows too).
const STATIC_IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?\sfrom\s+['"](\.[^'"]+)['"]/g;
const SIDE_EFFECT_IMPORT = /(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g;
const DYNAMIC_IMPORT = /\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** The project-internal imports of each file, resolved to files relative to `src/`. */
export function importsOf(sources: SourceFile[]): SourceImport[] {
  const imports: SourceImport[] = [];
  for (const { file, text } of sources) {
    const resolve = (spec: string) => path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
    for (const [pattern, dynamic] of [
      [STATIC_IMPORT, false],
      [SIDE_EFFECT_IMPORT, false],
      [DYNAMIC_IMPORT, true],
    ] as const) {
      for (const match of text.matchAll(pattern))
        imports.push({ from: file, to: resolve(match[1]!), dynamic });
    }
  }
  return imports;
}

export const folderOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

/**
 * Imports that point up: `order` lists the folders from the top layer to the bottom one, and a folder may
 * import only from itself and from folders below it. A folder missing from the order is a violation too.
 */
export function layerViolations(imports: SourceImport[], order: string[]): string[] {
  const rank = new Map(order.map((folder, index) => [folder, index]));
  const violations: string[] = [];
  for (const { from, to } of imports) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a === b) continue;
    if (!rank.has(a) || !rank.has(b)) {
      violations.push(`${from} → ${to}: ${!rank.has(a) ? a : b}/ is not in the layer order`);
    } else if (rank.get(b)! < rank.get(a)!) {
      violations.push(`${from} → ${to}: ${a}/ is below ${b}/`);
    }
  }
  return violations;
}

/** Every import cycle between files, each as the files around it (Tarjan's strongly connected components). */
export function importCycles(imports: SourceImport[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const { from, to } of imports) edges.set(from, [...(edges.get(from) ?? []), to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, index.get(next)!));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (edges.get(node) ?? []).includes(node)) cycles.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

/**
 * The tables a file's SQL names: `from t`, `join t`, `into t`, `update t`, `truncate t`, and the later tables
 * of a comma join (`from a x, t y`).
 */
export function tablesMentioned(text: string, tables: string[]): string[] {
  return tables.filter((table) => {
    const direct = new RegExp(
      `\\b(?:from|join|into|update|truncate)\\s+(?:only\\s+)?${table}\\b(?!['"\`/.-])`,
      'i',
    );
    const commaJoin = new RegExp(
      `\\bfrom\\s+\\w+\\s+\\w+\\s*,\\s*(?:\\w+\\s+\\w+\\s*,\\s*)*${table}\\s+\\w+`,
      'i',
    );
    return direct.test(text) || commaJoin.test(text);
  });
}
