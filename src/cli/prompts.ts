import { Command, type CommanderError } from 'commander';
import { createTwoFilesPatch } from 'diff';
import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import {
  getPrompt,
  getVersion,
  listEvents,
  listPrompts,
  listVersions,
  PROMPT_NAME_PATTERN,
  restoreVersion,
  syncPromptsDir,
} from '../prompts/index.ts';
import { printJson, withDatabase } from './context.ts';
import { UsageError } from './usage-error.ts';

interface JsonOption {
  json?: boolean;
}

interface PromptRef {
  name: string;
  /** Undefined: the current version. */
  version: number | undefined;
}

function parseRef(arg: string): PromptRef {
  const match = /^([^@]+)(?:@(\d+))?$/.exec(arg);
  if (!match || !PROMPT_NAME_PATTERN.test(match[1]!)) {
    throw new UsageError(
      `${JSON.stringify(arg)} is not NAME or NAME@VERSION: a name is 1 to 64 lower-case letters, digits, "-" or "_", a version a whole number.`,
    );
  }
  const version = match[2] === undefined ? undefined : Number(match[2]);
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) {
    throw new UsageError(`${JSON.stringify(arg)}: versions start at 1.`);
  }
  return { name: match[1]!, version };
}

function parseVersionNumber(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--if-match takes a version number, not ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

function formatTime(date: Date): string {
  return date.toISOString().replace('T', ' ').slice(0, 19);
}

/** Columns padded to their widest cell; the last column is not padded, so lines carry no trailing spaces. */
function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => (cell === null ? '-' : String(cell))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n')
    .concat('\n');
}

/** Records hand edits made while nothing was running, so what the command shows is up to date. */
async function syncFirst(sql: Sql, config: Config): Promise<void> {
  const report = await syncPromptsDir(sql, config.promptsDir, { maxBytes: config.limits.maxPromptBytes });
  const note = (line: string) => process.stderr.write(`${line}\n`);
  if (report.directoryMissing)
    note(`PROMPTS_DIR ${config.promptsDir} does not exist; showing recorded history.`);
  for (const change of report.changes) {
    const what =
      change.outcome === 'added' ? `recorded version ${change.version}` : `file is ${change.outcome}`;
    note(`${change.name}: ${what} (from ${config.promptsDir})`);
  }
  for (const name of report.skipped) note(`skipped ${name}: not a prompt file name`);
  for (const failure of report.failed) note(`could not record ${failure.name}: ${failure.message}`);
}

async function loadVersion(sql: Sql, ref: PromptRef) {
  if (ref.version !== undefined) return getVersion(sql, ref.name, ref.version);
  const prompt = await getPrompt(sql, ref.name);
  if (prompt.version === null) throw new Error(`Prompt ${ref.name} has no valid version yet.`);
  return getVersion(sql, ref.name, prompt.version);
}

async function listAction(opts: JsonOption): Promise<void> {
  await withDatabase(async ({ config, sql }) => {
    await syncFirst(sql, config);
    const prompts = await listPrompts(sql);
    if (opts.json) return printJson(prompts);
    if (prompts.length === 0) {
      process.stdout.write(`No prompts yet: add <name>.yaml files to ${config.promptsDir}.\n`);
      return;
    }
    const rows = prompts.map((p) => [
      p.name,
      p.version,
      p.fileState,
      p.model,
      formatTime(p.updatedAt),
      p.title,
    ]);
    process.stdout.write(table(['NAME', 'VERSION', 'FILE', 'MODEL', 'UPDATED', 'TITLE'], rows));
    for (const p of prompts) {
      if (p.fileError) process.stdout.write(`\n${p.name}.yaml is invalid, ${p.fileError.message}\n`);
    }
  });
}

async function historyAction(arg: string, opts: JsonOption): Promise<void> {
  const ref = parseRef(arg);
  if (ref.version !== undefined) throw new UsageError('history takes a NAME without @VERSION.');
  await withDatabase(async ({ config, sql }) => {
    await syncFirst(sql, config);
    const prompt = await getPrompt(sql, ref.name);
    const versions = await listVersions(sql, ref.name);
    const events = await listEvents(sql, ref.name);
    if (opts.json) {
      const { content: _content, document: _document, ...summary } = prompt;
      return printJson({ ...summary, versions, events });
    }
    const current = (v: number) => (v === prompt.version ? `${v} *` : String(v));
    const rows = versions.map((v) => [
      current(v.version),
      v.origin,
      v.sha256.slice(0, 12),
      v.size,
      formatTime(v.createdAt),
    ]);
    process.stdout.write(table(['VERSION', 'ORIGIN', 'SHA256', 'BYTES', 'CREATED'], rows));
    process.stdout.write(`(* = in use; the file is ${prompt.fileState})\n`);
    if (events.length > 0) {
      const eventRows = events.map((e) => [
        e.event,
        e.sha256?.slice(0, 12) ?? null,
        e.size,
        formatTime(e.createdAt),
        e.error?.message ?? null,
      ]);
      process.stdout.write(`\n${table(['EVENT', 'SHA256', 'BYTES', 'WHEN', 'ERROR'], eventRows)}`);
    }
  });
}

async function showAction(arg: string, opts: JsonOption): Promise<void> {
  const ref = parseRef(arg);
  await withDatabase(async ({ config, sql }) => {
    await syncFirst(sql, config);
    const version = await loadVersion(sql, ref);
    if (opts.json) return printJson(version);
    // Only the content on stdout, so `show NAME@V > NAME.yaml` gives the exact file back.
    process.stderr.write(
      `# ${version.name} version ${version.version} (${version.origin}, ${formatTime(version.createdAt)}, sha256 ${version.sha256})\n`,
    );
    process.stdout.write(version.content);
  });
}

async function diffAction(fromArg: string, toArg: string, opts: JsonOption): Promise<void> {
  const from = parseRef(fromArg);
  const to = parseRef(toArg);
  await withDatabase(async ({ config, sql }) => {
    await syncFirst(sql, config);
    const a = await loadVersion(sql, from);
    const b = await loadVersion(sql, to);
    const patch = createTwoFilesPatch(
      `${a.name}@${a.version}`,
      `${b.name}@${b.version}`,
      a.content,
      b.content,
      formatTime(a.createdAt),
      formatTime(b.createdAt),
    );
    const identical = a.sha256 === b.sha256;
    const side = (v: typeof a) => ({ name: v.name, version: v.version, sha256: v.sha256 });
    if (opts.json) return printJson({ from: side(a), to: side(b), identical, patch: identical ? '' : patch });
    if (identical) process.stderr.write(`${a.name}@${a.version} and ${b.name}@${b.version} are identical.\n`);
    else process.stdout.write(patch);
  });
}

async function restoreAction(arg: string, opts: JsonOption & { ifMatch?: number }): Promise<void> {
  const ref = parseRef(arg);
  if (ref.version === undefined) throw new UsageError('restore needs a version: NAME@VERSION.');
  const version = ref.version;
  await withDatabase(async ({ config, sql }) => {
    await syncFirst(sql, config);
    const result = await restoreVersion(sql, config.promptsDir, ref.name, version, {
      ifMatch: opts.ifMatch,
      maxBytes: config.limits.maxPromptBytes,
    });
    if (opts.json) return printJson({ ...result, restoredFrom: version });
    process.stdout.write(
      result.created
        ? `Restored ${ref.name} version ${version} as version ${result.version}; the file is rewritten.\n`
        : `${ref.name} version ${version} is already the content in use (version ${result.version}); nothing changed.\n`,
    );
  });
}

/**
 * Commander's own parse errors become UsageError (exit 2, message printed once by main); help and other
 * exit-0 cases are passed on as the CommanderError main already maps to exit 0.
 */
function usageErrors(command: Command): Command {
  return command
    .exitOverride((error: CommanderError) => {
      if (error.exitCode === 0) throw error;
      const hint = `run trendgen prompts ${command.name()} --help for usage`;
      throw new UsageError(`${error.message.replace(/^error: /, '')} (${hint}).`);
    })
    .configureOutput({ outputError: () => {} });
}

/** `trendgen prompts …`: prompt history from the shell. */
export function promptsCommand(): Command {
  const prompts = new Command('prompts').description(
    'Prompt history: every content a prompt file has had, with its hash, time and origin. Commands first record hand edits found in PROMPTS_DIR.',
  );

  usageErrors(prompts.command('list'))
    .description('Prompts in use: current version, state of the file, model and title.')
    .option('--json', 'one JSON document on stdout')
    .action(listAction);

  usageErrors(prompts.command('history'))
    .argument('<name>', 'prompt name')
    .description('Every version of a prompt, plus invalid contents, deletions and recoveries of its file.')
    .option('--json', 'one JSON document on stdout (with the invalid contents)')
    .action(historyAction);

  usageErrors(prompts.command('show'))
    .argument('<ref>', 'NAME for the version in use, or NAME@VERSION')
    .description('Print one version exactly as it was saved (details on stderr).')
    .option('--json', 'one JSON document on stdout, with the parsed prompt')
    .addHelpText('after', '\nExample:\n  trendgen prompts show ghibli-portrait@3 > ghibli-portrait.yaml\n')
    .action(showAction);

  usageErrors(prompts.command('diff'))
    .argument('<from>', 'NAME@VERSION (NAME alone: the version in use)')
    .argument('<to>', 'NAME@VERSION (NAME alone: the version in use)')
    .description('Unified diff between two versions.')
    .option('--json', 'one JSON document on stdout with the patch text')
    .addHelpText(
      'after',
      '\nExamples:\n  trendgen prompts diff ghibli-portrait@2 ghibli-portrait@5\n  trendgen prompts diff ghibli-portrait@2 ghibli-portrait\n',
    )
    .action(diffAction);

  usageErrors(prompts.command('restore'))
    .argument('<ref>', 'NAME@VERSION to make current again')
    .description(
      'Make an old version current again: the file is rewritten and a new version with origin "restore" is recorded. Nothing is removed.',
    )
    .option('--if-match <version>', 'only if the version in use is still this one', parseVersionNumber)
    .option('--json', 'one JSON document on stdout')
    .action(restoreAction);

  return prompts;
}
