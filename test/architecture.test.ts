import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  importCycles,
  importsOf,
  layerViolations,
  readSources,
  type SourceFile,
  tablesMentioned,
} from './support/source-graph.ts';

// docs/architecture.md is the map; this test holds the code to it, so the two cannot drift apart.
const root = path.resolve(import.meta.dirname, '..');
const map = readFileSync(path.join(root, 'docs/architecture.md'), 'utf8');
const sources = readSources(path.join(root, 'src'));
const imports = importsOf(sources);

/** The lines of the section under `heading` (up to the next heading of the same or a higher level). */
function section(heading: string): string[] {
  const lines = map.split('\n');
  const start = lines.findIndex((line) => line.trim() === heading);
  if (start < 0) throw new Error(`docs/architecture.md has no "${heading}" section`);
  const level = heading.indexOf(' ');
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && line.indexOf(' ') <= level);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** The folders in the first code block of "## Layers", top layer first: `name/  what it owns`. */
function layerOrder(): string[] {
  const lines = section('## Layers');
  const open = lines.findIndex((line) => line.startsWith('```'));
  const close = lines.findIndex((line, i) => i > open && line.startsWith('```'));
  return lines
    .slice(open + 1, close)
    .map((line) => /^([a-z]+)\/(?:\s|$)/.exec(line)?.[1])
    .filter((name): name is string => Boolean(name));
}

/** Rows of the first markdown table in a section: the backticked values of each cell. */
function tableRows(heading: string): string[][] {
  const lines = section(heading);
  const first = lines.findIndex((line) => line.startsWith('|'));
  const after = lines.findIndex((line, i) => i > first && !line.startsWith('|'));
  return lines
    .slice(first, after < 0 ? undefined : after)
    .filter((line) => !/^\|\s*-/.test(line))
    .slice(1)
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).join(' ')),
    );
}

// The schema: the migrations, and the runner's own bookkeeping table.
const tables = [
  ...readdirSync(path.join(root, 'src/db/migrations')).map((name) => `db/migrations/${name}`),
  'db/migrate.ts',
]
  .flatMap((file) => [
    ...readFileSync(path.join(root, 'src', file), 'utf8').matchAll(
      /create (?:unlogged )?table (?:if not exists )?(\w+)/gi,
    ),
  ])
  .map((m) => m[1]!);

describe('architecture (docs/architecture.md)', () => {
  it('every folder of src/ is a layer, and imports point only down the layer order', () => {
    const order = layerOrder();
    const folders = readdirSync(path.join(root, 'src'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    expect(order.sort()).toEqual([...folders].sort());
    expect(layerViolations(imports, layerOrder())).toEqual([]);
  });

  it('the layering rule catches an import that points up', () => {
    const wrong: SourceFile[] = [
      { file: 'lib/files.ts', text: "import { runBackup } from '../vault/backup.ts';\n" },
      { file: 'vault/backup.ts', text: "import type { Config } from '../config/config.ts';\n" },
    ];
    expect(layerViolations(importsOf(wrong), layerOrder())).toEqual([
      'lib/files.ts → vault/backup.ts: lib/ is below vault/',
    ]);
  });

  it('no import cycles, type-only imports included', () => {
    expect(importCycles(imports)).toEqual([]);
    const cyclic = importsOf([
      { file: 'a/x.ts', text: "import type { Y } from './y.ts';\n" },
      { file: 'a/y.ts', text: "export type { X } from './x.ts';\n" },
    ]);
    expect(importCycles(cyclic)).toEqual([['a/x.ts', 'a/y.ts']]);
  });

  it('dynamic imports only where a CLI command loads a heavy module lazily, saying so', () => {
    const dynamic = imports.filter((i) => i.dynamic);
    expect(dynamic.filter((i) => !i.from.startsWith('cli/')).map((i) => `${i.from} → ${i.to}`)).toEqual([]);
    // cli/commands.ts is the registry whose one purpose is loading each command lazily: its header says so once.
    const explained = sources.filter((s) => s.file !== 'cli/commands.ts');
    expect(sources.find((s) => s.file === 'cli/commands.ts')?.text).toMatch(
      /Only the\s+\*?\s*command being run is loaded/,
    );
    for (const { file, text } of explained.filter((s) => dynamic.some((i) => i.from === s.file))) {
      const lines = text.split('\n');
      lines.forEach((line, i) => {
        if (!/\bimport\(/.test(line)) return;
        const before = lines.slice(Math.max(0, i - 4), i).join('\n');
        expect(before, `${file}:${i + 1} needs a comment saying why it loads lazily`).toMatch(
          /\/\/.*(load|lazily)/i,
        );
      });
    }
  });

  it('each table is named in SQL only by its owner (or an exception the map lists)', () => {
    const owners = new Map(tableRows('## Tables').map(([table, owner]) => [table!, owner!]));
    expect([...owners.keys()].sort()).toEqual([...tables].sort());
    const exceptions = tableRows('### Reads across owners').map(([file, read]) => ({
      file: file!,
      tables: read!.split(' '),
    }));
    const strays: string[] = [];
    for (const { file, text } of sources) {
      for (const table of tablesMentioned(text, tables)) {
        const owner = owners.get(table)!;
        const owned = owner.endsWith('/') ? file.startsWith(owner) : file === owner;
        const excused = exceptions.some((e) => e.file === file && e.tables.includes(table));
        if (!owned && !excused) strays.push(`${file} names ${table} (owner: ${owner})`);
      }
    }
    expect(strays).toEqual([]);
  });

  it('the table rule sees plain and comma joins', () => {
    const text = 'select 1 from trends t, prompt_versions v where true; select 2 from objects';
    expect(tablesMentioned(text, ['trends', 'prompt_versions', 'objects', 'prompts'])).toEqual([
      'trends',
      'prompt_versions',
      'objects',
    ]);
  });

  it('no function is over 100 lines', () => {
    const long: string[] = [];
    for (const { file, text } of sources) {
      const tree = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node) => {
        if (ts.isFunctionLike(node) && 'body' in node && node.body) {
          const first = tree.getLineAndCharacterOfPosition(node.getStart()).line;
          const last = tree.getLineAndCharacterOfPosition(node.end).line;
          if (last - first + 1 > 100) long.push(`${file}:${first + 1} (${last - first + 1} lines)`);
        }
        ts.forEachChild(node, visit);
      };
      visit(tree);
    }
    expect(long).toEqual([]);
  });

  it('no source file is over 350 lines', () => {
    const long = sources
      .map(({ file, text }) => ({ file, lines: text.split('\n').length - 1 }))
      .filter((s) => s.lines > 350);
    expect(long).toEqual([]);
  });
});
