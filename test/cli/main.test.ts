import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.ts';
import { ALLOCATOR_SETTINGS } from '../../src/lib/allocator.ts';
import { CLI } from '../support/processes.ts';

const temp = mkdtempSync(path.join(os.tmpdir(), 'trendgen-cli-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function trendgen(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []) {
  const result = spawnSync(process.execPath, [...nodeArgs, CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The packages (not node: modules, not our own files) a run of the CLI imported. */
function packagesImportedBy(args: string[]): string[] {
  const file = path.join(temp, `imports-${args.join('-')}.txt`);
  const run = trendgen(args, { RECORD_IMPORTS_FILE: file }, [
    '--import',
    path.resolve(import.meta.dirname, '../support/record-imports.mjs'),
  ]);
  expect(run.status, run.stderr).toBe(0);
  return [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))];
}

describe('the trendgen program', () => {
  it('lists every command with its summary', () => {
    const help = trendgen(['--help']);
    expect(help.status).toBe(0);
    const text = help.stdout.replace(/\s+/g, ' ');
    for (const command of COMMANDS) {
      expect(text).toContain(` ${command.name} `);
      expect(text).toContain(command.summary.split(' ').slice(0, 4).join(' '));
    }
  });

  it('loads no command for --help, and only the one being run otherwise', () => {
    // commander alone: not the database client, the S3 SDK, the queue or the HTTP server.
    expect(packagesImportedBy(['--help'])).toEqual(['commander']);
    const backupHelp = packagesImportedBy(['backup', '--help']);
    expect(backupHelp).toContain('postgres');
    expect(backupHelp).not.toContain('fastify');
    expect(backupHelp).not.toContain('bullmq');
  });

  it("shows a command's whole description with `help <command>` and `<command> --help`", () => {
    for (const args of [
      ['help', 'restore'],
      ['restore', '--help'],
    ]) {
      const run = trendgen(args);
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(/^Usage: trendgen restore \[options\] \[snapshot\]/);
      expect(run.stdout).toContain('--to-time');
    }
  });

  it('says which command was meant for a misspelt one, exit 2', () => {
    const run = trendgen(['bakup']);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("unknown command 'bakup'");
    expect(run.stderr).toContain('Did you mean backup?');
  });

  it('runs compiled JavaScript, and says so in one sentence when it was not built', () => {
    expect(readFileSync(CLI, 'utf8')).toContain('../dist/cli/main.js');
    const unbuilt = path.join(temp, 'unbuilt');
    mkdirSync(path.join(unbuilt, 'bin'), { recursive: true });
    copyFileSync(CLI, path.join(unbuilt, 'bin/trendgen.js'));
    const run = spawnSync(process.execPath, [path.join(unbuilt, 'bin/trendgen.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(
      'trendgen: the program is not built (dist/cli/main.js is missing): run `npm run build`.',
    );
  });

  it.runIf(process.platform === 'linux')(
    "run as a program (npx trendgen), starts node with glibc's malloc settings unless the environment has its own",
    () => {
      const fake = path.join(temp, 'fake');
      mkdirSync(path.join(fake, 'bin'), { recursive: true });
      mkdirSync(path.join(fake, 'dist/cli'), { recursive: true });
      copyFileSync(CLI, path.join(fake, 'bin/trendgen.js'));
      writeFileSync(path.join(fake, 'package.json'), '{"type":"module"}\n');
      writeFileSync(
        path.join(fake, 'dist/cli/main.js'),
        `export function main(argv) {
          console.log(JSON.stringify({ argv: argv.slice(2),
            malloc: [process.env.MALLOC_MMAP_THRESHOLD_, process.env.MALLOC_ARENA_MAX] }));
        }\n`,
      );
      const run = (env: NodeJS.ProcessEnv) => {
        const result = spawnSync(path.join(fake, 'bin/trendgen.js'), ['backup', 'two words'], {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '', ...env },
        });
        expect(result.stderr).toBe('');
        expect(result.status).toBe(0);
        return JSON.parse(result.stdout) as { argv: string[]; malloc: string[] };
      };
      const plain = run({});
      expect(plain.argv).toEqual(['backup', 'two words']);
      expect(plain.malloc).toEqual(Object.values(ALLOCATOR_SETTINGS));
      expect(run({ MALLOC_ARENA_MAX: '8' }).malloc).toEqual([ALLOCATOR_SETTINGS.MALLOC_MMAP_THRESHOLD_, '8']);
    },
  );
});
