import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALLOCATOR_SETTINGS } from '../../../src/lib/allocator.ts';
import { tempDir } from '../../support/temp.ts';

const SCRIPT = path.resolve('scripts/backup.sh');

/**
 * scripts/backup.sh in a copy of a project whose bin/trendgen.js only reports what it was given: the
 * folder it runs in, its arguments and two variables. The real `backup` command is tested elsewhere.
 */
describe('scripts/backup.sh', () => {
  let temp: ReturnType<typeof tempDir>;
  let root: string;
  beforeAll(() => {
    temp = tempDir('backup-script');
    root = path.join(temp.dir, 'project');
    mkdirSync(path.join(root, 'scripts'), { recursive: true });
    mkdirSync(path.join(root, 'bin'));
    copyFileSync(SCRIPT, path.join(root, 'scripts/backup.sh'));
    writeFileSync(
      path.join(root, 'bin/trendgen.js'),
      `console.log(JSON.stringify({ cwd: process.cwd(), argv: process.argv.slice(2),
        dir: process.env.BACKUP_DIR ?? null, uri: process.env.BACKUP_S3_URI ?? null,
        malloc: [process.env.MALLOC_MMAP_THRESHOLD_, process.env.MALLOC_ARENA_MAX] }));
      process.exit(Number(process.env.FAKE_STATUS ?? 0));\n`,
    );
  });
  afterAll(() => temp?.remove());

  const run = (env: Record<string, string> = {}) =>
    spawnSync('sh', [path.join(root, 'scripts/backup.sh'), '--json', 'two words'], {
      cwd: temp.dir,
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
    });

  it('runs `trendgen backup` from the project root with the arguments, and returns its status', () => {
    const result = run({ FAKE_STATUS: '3' });
    expect(result.status).toBe(3);
    expect(JSON.parse(result.stdout)).toEqual({
      cwd: root,
      argv: ['backup', '--json', 'two words'],
      dir: null,
      uri: null,
      malloc: Object.values(ALLOCATOR_SETTINGS),
    });
  });

  it("gives trendgen glibc's malloc settings, a value the crontab sets winning", () => {
    const result = run({ MALLOC_ARENA_MAX: '8' });
    expect(JSON.parse(result.stdout).malloc).toEqual([ALLOCATOR_SETTINGS.MALLOC_MMAP_THRESHOLD_, '8']);
  });

  it('loads .env without letting it override the environment, and without running it as shell code', () => {
    writeFileSync(
      path.join(root, '.env'),
      '# classic settings\nBACKUP_DIR="/srv/backups with space"\nBACKUP_S3_URI=s3://from-file/x\nOOPS=$(touch pwned)\n',
    );
    const result = run({ BACKUP_S3_URI: 's3://from-env/y' });
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      dir: '/srv/backups with space',
      uri: 's3://from-env/y',
    });
    expect(spawnSync('test', ['-e', path.join(root, 'pwned')]).status).not.toBe(0);
  });

  it('says what to do when node is not found', () => {
    const result = run({ NODE: 'no-such-node' });
    expect(result.status).toBe(127);
    expect(result.stderr).toContain('set NODE=/path/to/node');
  });

  it('passes shellcheck', (context) => {
    try {
      execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
    } catch {
      context.skip();
    }
    execFileSync('shellcheck', ['-s', 'sh', SCRIPT]);
  });
});
