import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  Parser,
  parseAllDocuments,
  visit,
} from 'yaml';
import { type core, z } from 'zod';

export const PROMPT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const PROMPT_SIZES = ['small', 'medium', 'large', 'hd'] as const;

/** A prompt file that cannot be used; `line` and `column` are 1-based, as editors count. */
export class PromptValidationError extends Error {
  override name = 'PromptValidationError';
  readonly line: number;
  readonly column: number;
  /** The message without the position, for places that show the position separately. */
  readonly reason: string;

  constructor(reason: string, line: number, column: number) {
    super(`line ${line}, column ${column}: ${reason}`);
    this.reason = reason;
    this.line = line;
    this.column = column;
  }

  toJSON(): { message: string; line: number; column: number } {
    return { message: this.message, line: this.line, column: this.column };
  }
}

export class InvalidPromptNameError extends Error {
  override name = 'InvalidPromptNameError';
}

export function assertPromptName(name: string): void {
  if (!PROMPT_NAME_PATTERN.test(name)) {
    throw new InvalidPromptNameError(
      `${JSON.stringify(name)} is not a valid prompt name: use 1 to 64 lower-case letters, digits, "-" or "_", starting with a letter or a digit.`,
    );
  }
}

const promptSchema = z.strictObject({
  name: z.string().regex(PROMPT_NAME_PATTERN, 'must be 1 to 64 lower-case letters, digits, "-" or "_"'),
  title: z.string().trim().min(1).max(200),
  model: z.string().trim().min(1).max(200),
  template: z.string().trim().min(1),
  negative: z.string().optional(),
  parameters: z
    .object({
      temperature: z.number().min(0).max(2).optional(),
      seed: z.number().int().optional(),
      size: z.enum(PROMPT_SIZES).optional(),
    })
    .catchall(z.union([z.number(), z.string()]))
    .default({}),
  tags: z.array(z.string().trim().min(1)).default([]),
});

export type PromptDocument = z.infer<typeof promptSchema>;

const TOP_LEVEL_KEYS = Object.keys(promptSchema.shape);
const EXPECTED_MAP = 'a map with name, title, model and template (and optionally negative, parameters, tags)';

/** Parses and validates one prompt file; the first problem in file order is thrown. */
export function parsePrompt(text: string, expectedName?: string): PromptDocument {
  // A byte-order mark is invisible in editors: counting it would shift every column on line 1.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = new LineCounter();
  const docs = parseAllDocuments(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, reason: string) => {
    const pos = lines.linePos(offset);
    return new PromptValidationError(reason, pos.line, pos.col);
  };
  if (!Array.isArray(docs) || docs.length === 0) {
    throw at(0, `the file is empty; a prompt is ${EXPECTED_MAP}`);
  }
  const doc = docs[0]!;
  const syntax = doc.errors[0];
  if (syntax) {
    // An unclosed quote is noticed at the end of the file; the place to fix is the quote that opened it.
    const opened = syntax.code === 'MISSING_CHAR' ? unclosedQuote(source) : undefined;
    if (opened !== undefined) throw at(opened, 'this quote is never closed');
    throw at(syntax.pos[0], syntax.message.replace(/\.$/, ''));
  }
  // The yaml library only warns about `%YAML 9.9` and reads on as 1.2: a prompt must say what it means.
  const directive = docs.flatMap((d) => d.warnings).find((w) => w.code === 'BAD_DIRECTIVE');
  if (directive)
    throw at(directive.pos[0], `${directive.message.replace(/\.$/, '')}: only YAML 1.1 and 1.2 are read`);
  if (docs.length > 1) {
    throw at(docs[1]!.range[0], 'a second YAML document starts here; a prompt file holds exactly one');
  }
  const contents = doc.contents;
  if (!isMap(contents)) {
    const found = isSeq(contents)
      ? 'a list'
      : isScalar(contents) && contents.value !== null
        ? 'a single value'
        : 'nothing';
    throw at(contents?.range?.[0] ?? 0, `expected ${EXPECTED_MAP}, found ${found}`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw at(firstBrokenAlias(doc) ?? contents.range?.[0] ?? 0, (error as Error).message);
  }
  const parsed = promptSchema.safeParse(data);
  if (!parsed.success) {
    const located = parsed.error.issues.map((issue) => locateIssue(doc, data, issue));
    located.sort((a, b) => a.offset - b.offset);
    throw at(located[0]!.offset, located[0]!.reason);
  }
  if (expectedName !== undefined && parsed.data.name !== expectedName) {
    throw at(
      valueOffset(doc, ['name']),
      `name is ${JSON.stringify(parsed.data.name)} but the file is ${expectedName}.yaml: they must agree`,
    );
  }
  return parsed.data;
}

/** Where a quoted scalar that never closes starts, read from the parser's concrete syntax tree. */
function unclosedQuote(source: string): number | undefined {
  const search = (node: unknown): number | undefined => {
    if (Array.isArray(node)) {
      for (const item of node) {
        const found = search(item);
        if (found !== undefined) return found;
      }
      return undefined;
    }
    if (!node || typeof node !== 'object') return undefined;
    const token = node as { type?: string; offset?: number; source?: string };
    if (token.type === 'double-quoted-scalar' || token.type === 'single-quoted-scalar') {
      const quote = token.type === 'double-quoted-scalar' ? '"' : "'";
      const text = token.source ?? '';
      const closed =
        text.length > 1 && text.endsWith(quote) && (quote === "'" || !/(^|[^\\])(\\\\)*\\"$/.test(text));
      if (!closed) return token.offset;
    }
    for (const value of Object.values(node)) {
      const found = typeof value === 'object' ? search(value) : undefined;
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return search([...new Parser().parse(source)]);
}

function firstBrokenAlias(doc: Document): number | undefined {
  let offset: number | undefined;
  visit(doc, {
    Alias(_, node) {
      if (isAlias(node) && node.resolve(doc) === undefined) {
        offset = node.range?.[0];
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return offset;
}

/** Where a value starts (or, when it is absent, the nearest map or list that holds it). */
function valueOffset(doc: Document, path: ReadonlyArray<PropertyKey>): number {
  for (let depth = path.length; depth > 0; depth--) {
    const node = doc.getIn(path.slice(0, depth) as unknown[], true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return (doc.contents as Node | null)?.range?.[0] ?? 0;
}

/** Where a key of a map starts: an unknown key is wrong as a key, whatever its value. */
function keyOffset(doc: Document, mapPath: ReadonlyArray<PropertyKey>, key: PropertyKey): number {
  const map = mapPath.length === 0 ? doc.contents : doc.getIn(mapPath as unknown[], true);
  if (isMap(map)) {
    const pair = map.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === key);
    const start = pair && isNode(pair.key) ? pair.key.range?.[0] : undefined;
    if (start !== undefined) return start;
  }
  return valueOffset(doc, mapPath);
}

function describePath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out;
}

function valueAt(data: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = data;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

function locateIssue(
  doc: Document,
  data: unknown,
  issue: core.$ZodIssue,
): { offset: number; reason: string } {
  const where = describePath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((key) => JSON.stringify(key)).join(', ');
    const allowed = issue.path.length === 0 ? `; allowed keys are ${TOP_LEVEL_KEYS.join(', ')}` : '';
    const subject = where ? `${where} has` : 'the prompt has';
    return {
      offset: keyOffset(doc, issue.path, issue.keys[0]!),
      reason: `${subject} unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${allowed}`,
    };
  }
  const value = valueAt(data, issue.path);
  if (value === undefined && issue.code === 'invalid_type') {
    // The key is absent: point at the map that should hold it.
    return { offset: valueOffset(doc, issue.path.slice(0, -1)), reason: `${where} is required` };
  }
  return { offset: valueOffset(doc, issue.path), reason: `${where} ${describeIssue(issue, value)}` };
}

const TYPE_NAMES: Record<string, string> = { object: 'a map', array: 'a list', boolean: 'true or false' };

function typeName(type: string): string {
  return TYPE_NAMES[type] ?? `a ${type}`;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'boolean') return String(value);
  return `${typeName(typeof value)} ${JSON.stringify(value)}`;
}

function describeIssue(issue: core.$ZodIssue, value: unknown): string {
  const found = describeValue(value);
  switch (issue.code) {
    case 'invalid_type':
      if (issue.expected === 'int') return `must be a whole number, found ${String(value)}`;
      return `must be ${typeName(issue.expected)}, found ${found}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    case 'invalid_union':
      return `must be a number or a string, found ${found}`;
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      return `must be at least ${String(issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${String(issue.maximum)} characters long`;
      return `must be at most ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}

const VARIABLE = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** The `{variables}` of a template, each once, in order of first use. */
export function templateVariables(template: string): string[] {
  return [...new Set(Array.from(template.matchAll(VARIABLE), (match) => match[1]!))];
}

export class MissingTemplateValuesError extends Error {
  override name = 'MissingTemplateValuesError';
  constructor(readonly missing: string[]) {
    super(`the template needs a value for ${missing.map((name) => `{${name}}`).join(', ')}`);
  }
}

/** Fills every `{variable}`; a variable without a value is an error rather than literal braces in a prompt. */
export function renderTemplate(template: string, values: Readonly<Record<string, string | number>>): string {
  const missing = templateVariables(template).filter((name) => !Object.hasOwn(values, name));
  if (missing.length > 0) throw new MissingTemplateValuesError(missing);
  return template.replace(VARIABLE, (_, name: string) => String(values[name]));
}
