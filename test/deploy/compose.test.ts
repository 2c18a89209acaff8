import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config/config.ts';
import { describeConfig } from '../../src/config/describe.ts';
import { ALLOCATOR_SETTINGS } from '../../src/lib/allocator.ts';
import { tempDir } from '../support/temp.ts';
import {
  appServices,
  COMPOSE_FILE,
  DOCKERFILE,
  documentedVariables,
  ENV_EXAMPLE,
  loadCompose,
  ROOT,
  read,
  variableUses,
} from './deploy-files.ts';

// The secrets the Compose file requires, as an operator's deploy/.env would give them.
const SECRETS = {
  POSTGRES_PASSWORD: 'pgpass0123456789',
  REDIS_PASSWORD: 'redispass0123456789',
  ADMIN_TOKEN: 'admin-token-0123456789',
};

// Settings of `trendgen up` only: they name the embedded servers' ports, which Compose does not run.
const EMBEDDED_ONLY = new Set(['POSTGRES_PORT', 'REDIS_PORT']);

const temp = tempDir('deploy');
afterAll(() => temp.remove());

/** Every variable the application reads: the keys of its config schema (`source` holds one entry per key). */
function appVariables(): string[] {
  return Object.keys(loadConfig({}, { dotEnv: false, cwd: temp.dir }).source);
}

/** The in-container settings Compose fixes for every app service, as the app would read them. */
function containerEnv(doc = loadCompose({ ...SECRETS })): Record<string, string> {
  return appServices(doc)[0]![1].environment!;
}

/** A value as the app ends up using it, in the container's context (DATA_DIR=/data, ...). */
function effective(name: string, value: string | undefined): string | undefined {
  const env = { ...containerEnv(), [name]: value };
  return describeConfig(loadConfig(env, { dotEnv: false, cwd: temp.dir }))[name];
}

function whichSync(program: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

describe('deploy/docker-compose.yml', () => {
  it("validates against the Compose specification's JSON schema", () => {
    // compose_spec.json as shipped by docker-compose 1.29 (Apache-2.0), draft 2019-09 with its own formats.
    // Its draft-04 style `id` strings are only labels (every $ref is local): Ajv wants them gone.
    const schema = JSON.parse(
      readFileSync(path.join(ROOT, 'test/deploy/compose-spec.json'), 'utf8'),
      (key, value) => (key === 'id' && typeof value === 'string' ? undefined : value),
    );
    delete schema.$schema;
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
    ajv.addFormat('ports', true);
    ajv.addFormat('subnet_ip_address', true);
    const validate = ajv.compile(schema);
    // Compose validates the interpolated file: `${VAR:-default}` becomes its default, secrets their values.
    const doc = loadCompose({ ...SECRETS });
    const ok = validate(doc);
    expect(ajv.errorsText(validate.errors, { separator: '\n' }), 'schema errors').toBe('No errors');
    expect(ok).toBe(true);
    // The schema is strict enough to catch a mistake: a misspelt key fails.
    const broken = structuredClone(doc) as { services: Record<string, Record<string, unknown>> };
    broken.services.api!.restrat = 'always';
    expect(validate(broken)).toBe(false);
  });

  const dockerCompose = whichSync('docker-compose');
  it.skipIf(!dockerCompose)(
    `docker-compose config accepts it with the secrets set and refuses it without them${dockerCompose ? '' : ' (skipped: docker-compose 1.29 is not installed; apt-get install -y docker-compose)'}`,
    () => {
      const envFile = path.join(temp.dir, 'compose.env');
      // deploy/.env.example with the secrets filled in: the file an operator starts from must work as it is.
      writeFileSync(
        envFile,
        read(ENV_EXAMPLE).replace(
          /^(POSTGRES_PASSWORD|REDIS_PASSWORD|ADMIN_TOKEN)=$/gm,
          (_, name: keyof typeof SECRETS) => `${name}=${SECRETS[name]}`,
        ),
      );
      // Only PATH and HOME: a developer's environment or deploy/.env must not make this pass.
      const env = { PATH: process.env.PATH ?? '', HOME: temp.dir };
      const run = (...args: string[]) =>
        spawnSync('docker-compose', ['--env-file', args[0]!, '-f', COMPOSE_FILE, ...args.slice(1)], {
          env,
          encoding: 'utf8',
          timeout: 30_000,
        });
      for (const extra of [[], ['--profile', 'minio']]) {
        const result = run(envFile, ...extra, 'config', '-q');
        expect(result.stderr, `docker-compose ${extra.join(' ')} config -q`).not.toMatch(/ERROR/);
        expect(result.status).toBe(0);
      }
      const services = run(envFile, '--profile', 'minio', 'config', '--services').stdout.trim().split('\n');
      expect(services.sort()).toEqual(
        [
          'api',
          'migrate',
          'minio',
          'minio-init',
          'postgres',
          'protect',
          'redis',
          'scheduler',
          'worker',
        ].sort(),
      );
      const empty = path.join(temp.dir, 'empty.env');
      writeFileSync(empty, '');
      const refused = run(empty, 'config', '-q');
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/POSTGRES_PASSWORD|REDIS_PASSWORD|ADMIN_TOKEN/);
    },
  );

  it('has PostgreSQL with checksums and Redis with AOF on named volumes, both health-checked', () => {
    const doc = loadCompose({ ...SECRETS });
    const { postgres, redis } = doc.services;
    expect(postgres!.environment!.POSTGRES_INITDB_ARGS).toContain('--data-checksums');
    expect(postgres!.volumes).toContain('postgres_data:/var/lib/postgresql/data');
    expect(JSON.stringify(postgres!.healthcheck!.test)).toContain('pg_isready');
    const redisCommand = (redis!.command as string[]).join(' ');
    expect(redisCommand).toMatch(/--appendonly yes/);
    expect(redisCommand).toMatch(/--appendfsync everysec/);
    expect(redisCommand).toContain(`--requirepass ${SECRETS.REDIS_PASSWORD}`);
    expect(redis!.volumes).toContain('redis_data:/data');
    expect(JSON.stringify(redis!.healthcheck!.test)).toContain('ping');
    expect(Object.keys(doc.volumes)).toEqual(
      expect.arrayContaining(['postgres_data', 'redis_data', 'app_data', 'minio_data']),
    );
    for (const [name, service] of Object.entries(doc.services)) {
      const oneShot = name === 'migrate' || name === 'minio-init';
      expect(service.restart, name).toBe(oneShot ? 'no' : 'unless-stopped');
    }
    expect(doc.services.minio!.profiles).toEqual(['minio']);
    expect(doc.services['minio-init']!.profiles).toEqual(['minio']);
  });

  it('starts api, worker and scheduler after healthy PostgreSQL and Redis and a completed migrate', () => {
    const doc = loadCompose({ ...SECRETS });
    for (const name of ['api', 'worker', 'scheduler', 'protect']) {
      expect(doc.services[name]!.depends_on, name).toEqual({
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
      expect(doc.services[name]!.volumes, name).toEqual([
        'app_data:/data',
        '../prompts:/prompts',
        '../backups:/backups',
      ]);
    }
    expect(doc.services.api!.ports).toEqual(['127.0.0.1:8080:8080']);
    const env = containerEnv(doc);
    expect(env.STORAGE_URL).toBe('file:///data/objects');
    expect(env.BACKUP_DIR).toBe('/backups');
    expect(env.DATABASE_URL).toBe(`postgres://trends:${SECRETS.POSTGRES_PASSWORD}@postgres:5432/trends`);
    expect(env.REDIS_URL).toBe(`redis://:${SECRETS.REDIS_PASSWORD}@redis:6379/0`);
    // The worker finishes the jobs in hand: it gets minutes, not Docker's default 10 seconds.
    expect(doc.services.worker!.stop_grace_period).toMatch(/^\d+m$/);
    // What the containers get is a configuration the app accepts.
    expect(() => loadConfig(env, { dotEnv: false, cwd: temp.dir })).not.toThrow();
  });

  it('runs, in every trendgen service, a command the CLI has', () => {
    const commands = new Set(buildProgram().commands.map((c) => c.name()));
    const apps = appServices(loadCompose({ ...SECRETS }));
    expect(apps.map(([name]) => name).sort()).toEqual(['api', 'migrate', 'protect', 'scheduler', 'worker']);
    for (const [name, service] of apps) {
      const command = Array.isArray(service.command) ? service.command : service.command!.split(/\s+/);
      expect(commands, `${name}: trendgen ${command[0]}`).toContain(command[0]);
    }
    const byService = Object.fromEntries(apps.map(([name, s]) => [name, (s.command as string[])[0]]));
    expect(byService).toEqual({
      api: 'serve',
      worker: 'worker',
      scheduler: 'scheduler',
      migrate: 'migrate',
      protect: 'protect',
    });
  });

  it('never uses a variable without a default or a required-message, and gives each one default', () => {
    const { uses, bare } = variableUses(read(COMPOSE_FILE));
    expect(bare, 'a bare $VAR: give it a default with :- or a message with :?, or write $$').toEqual([]);
    expect(uses.filter((u) => u.kind === 'plain').map((u) => u.text)).toEqual([]);
    for (const name of new Set(uses.map((u) => u.name))) {
      const defaults = new Set(
        uses.filter((u) => u.name === name && u.kind === 'default').map((u) => u.value),
      );
      expect(
        defaults.size,
        `${name} has different defaults: ${[...defaults].join(' | ')}`,
      ).toBeLessThanOrEqual(1);
      const kinds = new Set(uses.filter((u) => u.name === name).map((u) => u.kind));
      expect(kinds.size, `${name} is both required and defaulted`).toBe(1);
    }
    expect(uses.filter((u) => u.kind === 'required').map((u) => u.name)).toEqual(
      expect.arrayContaining(['POSTGRES_PASSWORD', 'REDIS_PASSWORD', 'ADMIN_TOKEN']),
    );
  });

  it("passes every application setting to the trendgen services, defaulting to the app's own defaults", () => {
    const raw = appServices(loadCompose())[0]![1].environment!;
    const missing = appVariables().filter((name) => !EMBEDDED_ONLY.has(name) && !(name in raw));
    expect(missing, 'app settings an operator could not set under Compose').toEqual([]);
    for (const [name, value] of Object.entries(raw)) {
      const m = /^\$\{([A-Z0-9_]+):-([^}]*)\}$/.exec(value);
      if (!m || m[1] !== name || m[2] === '') continue;
      // A default written into the Compose file must be the app's: one source of defaults, no drift.
      expect(effective(name, m[2]), `${name}: Compose default ${m[2]}`).toBe(effective(name, undefined));
    }
  });
});

describe('deploy/.env.example', () => {
  const documented = documentedVariables();

  it('documents every variable the Compose file uses and every variable the app reads', () => {
    const used = new Set(variableUses(read(COMPOSE_FILE)).uses.map((u) => u.name));
    const undocumented = [...used, ...appVariables()].filter((name) => !documented.has(name));
    expect([...new Set(undocumented)], 'add them to deploy/.env.example').toEqual([]);
    for (const d of documented.values()) {
      expect(d.description, `${d.name} (line ${d.line}) needs a comment above it`).not.toBe('');
      expect(d.description, `${d.name} (line ${d.line}): say its default, or that it is required`).toMatch(
        /default|required/i,
      );
    }
  });

  it('shows defaults that are the real ones', () => {
    const { uses } = variableUses(read(COMPOSE_FILE));
    const composeDefault = new Map(uses.filter((u) => u.kind === 'default').map((u) => [u.name, u.value]));
    const required = new Set(uses.filter((u) => u.kind === 'required').map((u) => u.name));
    for (const name of required) {
      // A required secret is an empty, active line: Compose stops with its message until it is filled in.
      expect(documented.get(name), name).toMatchObject({ value: '', commented: false });
    }
    const passedThrough = appServices(loadCompose())[0]![1].environment!;
    for (const d of documented.values()) {
      if (d.value === '' || required.has(d.name)) continue;
      const inCompose = composeDefault.get(d.name);
      const toApp = passedThrough[d.name] === `\${${d.name}:-}`;
      if (inCompose !== undefined && inCompose !== '') {
        expect(d.value, `${d.name} (line ${d.line}): the Compose file's default`).toBe(inCompose);
      } else if (toApp || EMBEDDED_ONLY.has(d.name)) {
        expect(effective(d.name, d.value), `${d.name}=${d.value} (line ${d.line}): the app's default`).toBe(
          effective(d.name, undefined),
        );
      }
    }
  });
});

describe('deploy/Dockerfile', () => {
  const text = read(DOCKERFILE);
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() && !line.trimStart().startsWith('#'));
  const runtime = instructions.slice(instructions.findLastIndex((line) => /^FROM\s/i.test(line)));
  const installs = runtime
    .filter((line) => /^RUN\s.*apt-get install/.test(line))
    .join(' ')
    .split(/\s+/);

  it('is multi-stage on node:20-bookworm-slim', () => {
    expect(instructions.filter((line) => /^FROM\s/.test(line)).length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(text).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(text).toMatch(/npm ci/);
  });

  it("installs pg_dump and pg_restore of the Compose PostgreSQL's major version, redis-cli, redis-server, fonts and tini", () => {
    const image = loadCompose({ ...SECRETS }).services.postgres!.image!;
    const major = /^postgres:(\d+)/.exec(image)?.[1];
    expect(major, `postgres image ${image} pins a major version`).toBeDefined();
    expect(installs).toContain(`postgresql-client-${major}`);
    expect(text).toContain(`/usr/lib/postgresql/${major}/bin/pg_restore`);
    for (const pkg of ['redis-tools', 'redis-server', 'fonts-dejavu-core', 'tini'])
      expect(installs).toContain(pkg);
    // Debian bookworm's redis-server is 7.0: the Compose Redis must not write RDB files it cannot load.
    expect(loadCompose({ ...SECRETS }).services.redis!.image).toBe('redis:7.0');
  });

  it("sets the malloc settings `trendgen up` gives its children, so every container's process has them", () => {
    for (const [name, value] of Object.entries(ALLOCATOR_SETTINGS))
      expect(runtime.join('\n')).toMatch(new RegExp(`^ENV .*\\b${name}=${value}\\b`, 'm'));
  });

  it('runs as a non-root user under tini, `serve` by default, with a /healthz healthcheck', () => {
    const users = runtime.filter((line) => /^USER\s/.test(line)).map((line) => line.split(/\s+/)[1]);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:.*)?$/);
    expect(runtime).toContain('ENTRYPOINT ["tini", "--", "node", "bin/trendgen.js"]');
    expect(runtime).toContain('CMD ["serve"]');
    expect(runtime.find((line) => line.startsWith('HEALTHCHECK'))).toMatch(/\/healthz/);
  });

  it('copies only what exists and what .dockerignore lets into the build context', () => {
    const ignore = read(path.join(ROOT, '.dockerignore'))
      .split('\n')
      .filter((line) => line && !line.startsWith('#'));
    expect(ignore[0], 'allowlist: everything out first').toBe('*');
    const allowed = new Set(ignore.filter((line) => line.startsWith('!')).map((line) => line.slice(1)));
    const copied = instructions
      .filter((line) => /^COPY\s/.test(line) && !/--from=/.test(line))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(copied.length).toBeGreaterThan(0);
    for (const source of copied) {
      const clean = source.replace(/\/$/, '');
      expect(existsSync(path.join(ROOT, clean)), source).toBe(true);
      expect(allowed, `${source} is excluded by .dockerignore`).toContain(clean);
    }
    for (const needed of [
      'bin',
      'src',
      'package.json',
      'package-lock.json',
      '.npmrc',
      'tsconfig.json',
      'tsconfig.build.json',
      'scripts/build.mjs',
    ]) {
      expect(copied.map((s) => s.replace(/\/$/, ''))).toContain(needed);
    }
  });

  it('gives /data and the mounted folders to the runtime user', () => {
    // Named volumes start as a copy of the image's folder: /data must belong to the user, or nothing can be written.
    expect(runtime.some((line) => /^RUN\s.*chown node:node \/data \/prompts \/backups/.test(line))).toBe(
      true,
    );
    expect(runtime.filter((line) => /^USER\s/.test(line)).at(-1)).toBe('USER node');
  });
});
