import { access, constants, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { PROMPT_FILE_PATTERN, promptFileProblem, readPromptFile } from '../../prompts/index.ts';
import { type DoctorCheck, errorMessage, fail, NotChecked, ok, warn } from './types.ts';

const SHOWN = 5;

/**
 * Why a prompt file cannot be used, in the words the watcher records (line and column first), or undefined.
 * Read as the watcher reads it: a link is never followed, a FIFO or socket never opened for reading.
 */
async function problemOf(file: string, name: string, maxBytes: number): Promise<string | undefined> {
  const read = await readPromptFile(file, maxBytes);
  if (read.kind === 'missing') return undefined;
  return promptFileProblem(read, name, maxBytes)?.message;
}

function list(items: string[]): string {
  const shown = items.slice(0, SHOWN).join('; ');
  return items.length > SHOWN ? `${shown}; and ${items.length - SHOWN} more` : shown;
}

export function promptChecks(): DoctorCheck[] {
  return [
    {
      id: 'prompts.dir',
      run: async (ctx) => {
        const dir = ctx.config.promptsDir;
        const info = await stat(dir).catch(() => undefined);
        const hint = 'create the folder, or correct PROMPTS_DIR';
        if (!info) return fail(`PROMPTS_DIR ${dir} does not exist`, hint);
        if (!info.isDirectory()) return fail(`PROMPTS_DIR ${dir} is not a folder`, hint);
        try {
          await access(dir, constants.R_OK | constants.X_OK);
        } catch {
          return fail(`PROMPTS_DIR ${dir} cannot be read by this user`, 'fix its owner or permissions');
        }
        try {
          await access(dir, constants.W_OK);
        } catch {
          return warn(
            `PROMPTS_DIR ${dir} is read-only for this user: saving prompts through the API fails`,
            'fix its owner or permissions',
          );
        }
        return ok(`PROMPTS_DIR ${dir} is readable and writable`);
      },
    },
    {
      id: 'prompts.valid',
      // The files themselves are read rather than the database's file_state: they are what the next
      // sync will see, and the check still works when no watcher runs or the database is down.
      run: async (ctx) => {
        const dir = ctx.config.promptsDir;
        let entries: Array<{ name: string; isDirectory(): boolean }>;
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (error) {
          throw new NotChecked(`PROMPTS_DIR cannot be listed (${errorMessage(error)})`);
        }
        const files = entries.filter((e) => /\.ya?ml$/.test(e.name) && !e.isDirectory()).map((e) => e.name);
        const skipped = files.filter((file) => !PROMPT_FILE_PATTERN.test(file)).sort();
        const invalid: string[] = [];
        for (const file of files.filter((f) => PROMPT_FILE_PATTERN.test(f)).sort()) {
          const name = file.slice(0, -'.yaml'.length);
          const problem = await problemOf(path.join(dir, file), name, ctx.config.limits.maxPromptBytes).catch(
            (error) => `cannot be read: ${errorMessage(error)}`,
          );
          if (problem) invalid.push(`${file} ${problem}`);
        }
        const valid = files.length - skipped.length - invalid.length;
        const parts: string[] = [];
        if (invalid.length) {
          parts.push(
            `${invalid.length} of ${files.length - skipped.length} prompt file(s) invalid (their last valid versions stay in use): ${list(invalid)}`,
          );
        }
        if (skipped.length) {
          parts.push(
            `${skipped.length} file(s) not read because their names are not prompt names (lower-case letters, digits, - and _, ending in .yaml): ${list(skipped)}`,
          );
        }
        if (parts.length)
          return warn(parts.join('. '), 'fix the files; `trendgen prompts list` shows their state');
        return ok(valid ? `${valid} prompt file(s), all valid` : 'no prompt files yet');
      },
    },
  ];
}
