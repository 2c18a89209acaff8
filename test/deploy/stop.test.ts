import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.ts';
import { ROOT } from './deploy-files.ts';

const STOP = path.join(ROOT, 'scripts/stop.sh');
// The script names the Compose file by its physical path.
const COMPOSE_FILE = path.join(realpathSync(ROOT), 'deploy/docker-compose.yml');

const temp = tempDir('stop');
afterAll(() => temp.remove());

const bin = path.join(temp.dir, 'bin');
const dockerLog = path.join(temp.dir, 'docker.log');
const trendgenLog = path.join(temp.dir, 'trendgen.log');

function script(file: string, body: string): string {
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

// Fakes first on PATH: they only write down how they were called. `docker compose version` fails when
// FAKE_NO_COMPOSE_PLUGIN is set, as on a machine with the Docker CLI but no Compose plugin.
spawnSync('mkdir', ['-p', bin]);
script(
  path.join(bin, 'docker'),
  `printf '%s\\n' "docker $*" >> "$FAKE_DOCKER_LOG"
if [ "$1 $2" = "compose version" ] && [ -n "\${FAKE_NO_COMPOSE_PLUGIN:-}" ]; then exit 1; fi
exit 0`,
);
script(path.join(bin, 'docker-compose'), `printf '%s\\n' "docker-compose $*" >> "$FAKE_DOCKER_LOG"`);
// Stands in for `node bin/trendgen.js` (TRENDGEN_BIN): prints FAKE_SNAPSHOTS, or fails like trendgen does.
const fakeTrendgen = script(
  path.join(temp.dir, 'fake-trendgen'),
  `printf '%s\\n' "$*" >> "$FAKE_TRENDGEN_LOG"
if [ -n "\${FAKE_TRENDGEN_ERROR:-}" ]; then printf 'trendgen: %s\\n' "$FAKE_TRENDGEN_ERROR" >&2; exit 1; fi
printf '%s\\n' "$FAKE_SNAPSHOTS"`,
);

beforeEach(() => {
  writeFileSync(dockerLog, '');
  writeFileSync(trendgenLog, '');
});

function stop(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(STOP, args, {
    cwd: temp.dir,
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: temp.dir,
      FAKE_DOCKER_LOG: dockerLog,
      FAKE_TRENDGEN_LOG: trendgenLog,
      ...env,
    },
  });
  return {
    code: result.status,
    stderr: result.stderr,
    docker: readFileSync(dockerLog, 'utf8').split('\n').filter(Boolean),
    trendgen: readFileSync(trendgenLog, 'utf8').split('\n').filter(Boolean),
  };
}

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
const listing = (snapshots: Array<{ time: string; targets: string[] }>, unreachable: unknown[] = []) =>
  JSON.stringify({
    snapshots: snapshots.map((s, i) => ({ id: `${i}`.repeat(64), tags: [], facts: {}, stats: {}, ...s })),
    unreachable,
  });

describe('scripts/stop.sh', () => {
  it('stops the stack with docker compose down, passing other arguments on', () => {
    const plain = stop([]);
    expect(plain.code).toBe(0);
    expect(plain.docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down`);
    const passed = stop(['--timeout', '30', '--remove-orphans']);
    expect(passed.docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down --timeout 30 --remove-orphans`);
    // `stop.sh down` reads like `stop.sh`.
    expect(stop(['down']).docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down`);
  });

  it('falls back to docker-compose when docker has no compose command', () => {
    const result = stop([], { FAKE_NO_COMPOSE_PLUGIN: '1' });
    expect(result.code).toBe(0);
    expect(result.docker.at(-1)).toBe(`docker-compose -f ${COMPOSE_FILE} down`);
  });

  it.each([
    [['-v']],
    [['--volumes']],
    [['--volumes=true']],
    [['down', '-v']],
    [['down -v']],
    [['--timeout', '10', '-v']],
    [['-v', '--remove-orphans']],
    [['--remove-orphans', '-tv']],
  ])('I9: refuses %j, exits 1 and runs nothing', (args) => {
    const result = stop(args, {
      TRENDGEN_BIN: fakeTrendgen,
      FAKE_SNAPSHOTS: listing([{ time: minutesAgo(1), targets: ['s3'] }]),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^stop\.sh: refusing -v: .*--delete-all-data.*\.\n$/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.docker).toEqual([]);
    // Without --delete-all-data the backup is not even looked at.
    expect(result.trendgen).toEqual([]);
  });

  it('I9: refuses -v --delete-all-data when no offsite target is configured (the real trendgen answers)', () => {
    // Set but empty: unset for trendgen, whatever a .env in the project says.
    const result = stop(['-v', '--delete-all-data'], { BACKUP_S3_URI: '', BACKUP_OFFSITE_TARGETS: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^stop\.sh: refusing -v --delete-all-data: .*No offsite target is configured/,
    );
    expect(result.stderr).toMatch(/BACKUP_S3_URI or BACKUP_OFFSITE_TARGETS/);
    expect(result.docker).toEqual([]);
  });

  it.each([
    [
      'the newest offsite snapshot is two hours old',
      { FAKE_SNAPSHOTS: listing([{ time: minutesAgo(120), targets: ['s3'] }]) },
      /120 minutes old/,
    ],
    [
      'the only recent snapshot is local',
      { FAKE_SNAPSHOTS: listing([{ time: minutesAgo(1), targets: ['local'] }]) },
      /no offsite target holds a snapshot/,
    ],
    ['the offsite target is empty', { FAKE_SNAPSHOTS: listing([]) }, /no offsite target holds a snapshot/],
    [
      'the snapshot is dated two hours ahead (a wrong clock)',
      { FAKE_SNAPSHOTS: listing([{ time: minutesAgo(-120), targets: ['s3'] }]) },
      /in the future/,
    ],
    [
      'the offsite target is unreachable',
      { FAKE_SNAPSHOTS: listing([], [{ target: 's3', error: 'connect ECONNREFUSED 10.0.0.9:9000.' }]) },
      /unreachable: s3 \(connect ECONNREFUSED 10\.0\.0\.9:9000\)/,
    ],
    [
      'trendgen fails',
      { FAKE_TRENDGEN_ERROR: 'BACKUP_PASSWORD is wrong for this repository.' },
      /BACKUP_PASSWORD is wrong/,
    ],
    [
      'trendgen prints no JSON',
      { FAKE_SNAPSHOTS: 'ID  TIME' },
      /could not be listed \(trendgen printed no JSON\)/,
    ],
  ])('I9: refuses -v --delete-all-data when %s, and runs nothing', (_, env, reason) => {
    const result = stop(['--delete-all-data', '-v'], { TRENDGEN_BIN: fakeTrendgen, ...env });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^stop\.sh: refusing -v --delete-all-data: /);
    expect(result.stderr).toMatch(reason);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.trendgen).toEqual(['snapshots --offsite --json']);
    expect(result.docker).toEqual([]);
  });

  it('I9: with --delete-all-data and an offsite snapshot younger than an hour, runs down -v', () => {
    const result = stop(['-v', '--delete-all-data', '--remove-orphans'], {
      TRENDGEN_BIN: fakeTrendgen,
      FAKE_SNAPSHOTS: listing([
        { time: minutesAgo(20), targets: ['local', 's3'] },
        { time: minutesAgo(90), targets: ['s3'] },
      ]),
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /deleting all data; the newest offsite snapshot is 000000000000 from .* \(20 minutes old\)/,
    );
    expect(result.docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down -v --remove-orphans`);
  });

  it('I9: a snapshot on a BACKUP_OFFSITE_TARGETS target counts as offsite too', () => {
    const result = stop(['-v', '--delete-all-data'], {
      TRENDGEN_BIN: fakeTrendgen,
      FAKE_SNAPSHOTS: listing([{ time: minutesAgo(5), targets: ['region-b'] }]),
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/deleting all data; the newest offsite snapshot is .* \(5 minutes old\)/);
    expect(result.docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down -v`);
  });

  it('--delete-all-data alone deletes nothing: a plain down', () => {
    const result = stop(['--delete-all-data'], { TRENDGEN_BIN: fakeTrendgen });
    expect(result.code).toBe(0);
    expect(result.trendgen).toEqual([]);
    expect(result.docker.at(-1)).toBe(`docker compose -f ${COMPOSE_FILE} down`);
  });
});
