import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config/config.ts';
import { freePort, isPortFree, waitFor } from '../../src/lib/process.ts';
import { streamsWal, whoProtects } from '../../src/vault/protected-by.ts';
import { tempDir } from '../support/temp.ts';
import { type Container, K8S_DIR, type K8sObject, one, podTemplates, render } from './k8s-render.ts';

/** Stand-ins for the Secrets' values, so that the settings can be loaded as a pod would see them. */
const SECRET_VALUES: Record<string, string> = {
  'trendgen-pg-app/uri': 'postgresql://trends:pw@trendgen-pg-rw.trendgen:5432/trends',
  'trendgen-redis/password': 'redispassword0123',
  'trendgen-app/ADMIN_TOKEN': 'admin-token-0123456789abcdef',
  'trendgen-app/API_TOKEN': 'client-token-0123456789abcdef',
  'trendgen-app/BACKUP_PASSWORD': 'backup-password-0123',
  'trendgen-app/OPENAI_API_KEY': 'sk-test',
  'trendgen-app/ALERT_WEBHOOK_URL': 'https://hooks.example.com/trendgen',
  'trendgen-s3/AWS_ACCESS_KEY_ID': 'AKIATEST',
  'trendgen-s3/AWS_SECRET_ACCESS_KEY': 'secret-test',
  'trendgen-offsite/AWS_ACCESS_KEY_ID': 'AKIAOFFSITE',
  // An AWS secret as issued: / and + are spelled into BACKUP_OFFSITE_TARGETS as they are.
  'trendgen-offsite/AWS_SECRET_ACCESS_KEY': 'wJalrXUtn/FEMI+K7MDENG',
};

const trendgenPods = (objects: K8sObject[]) =>
  podTemplates(objects).filter((p) => p.labels['app.kubernetes.io/name'] === 'trendgen');

/** The environment a container starts with: its ConfigMaps, then its env with Kubernetes' $(VAR) expansion. */
function environment(objects: K8sObject[], container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    expect(from.secretRef).toBeUndefined();
    Object.assign(env, one(objects, 'ConfigMap', from.configMapRef!.name).data);
  }
  for (const { name, value, valueFrom } of container.env ?? []) {
    const ref = valueFrom?.secretKeyRef;
    env[name] = ref
      ? SECRET_VALUES[`${ref.name}/${ref.key}`]!
      : value!.replace(/\$\(([A-Z0-9_]+)\)/g, (_, v: string) => env[v] ?? `$(${v})`);
  }
  return env;
}

describe('Kubernetes manifests: trendgen runs its real commands with its real settings', () => {
  let objects: K8sObject[];
  beforeAll(() => {
    objects = render('overlays/single-region');
  });

  it('every container runs a trendgen command; continuous protection is CloudNativePG’s and the object stream', () => {
    const commands = new Set(buildProgram().commands.map((c) => c.name()));
    const run = trendgenPods(objects).flatMap((pod) =>
      [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => c.args?.[0] ?? ''),
    );
    expect(run.sort()).toEqual(['migrate', 'object-stream', 'scheduler', 'serve', 'worker']);
    for (const command of run) expect(commands).toContain(command);
    // The migration runs before the api's new pods (an init container of the api Deployment).
    const api = trendgenPods(objects).find((p) => p.owner === 'Deployment/trendgen-api')!;
    expect(api.spec.initContainers?.map((c) => c.args)).toEqual([['migrate']]);
  });

  it('every variable set is one src/config/config.ts reads, and the settings load as each pod sees them', () => {
    const known = new Set(Object.keys(loadConfig({}, { dotEnv: false }).source));
    for (const pod of trendgenPods(objects)) {
      const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
      // A variable only spelled into another one ($(REDIS_PASSWORD) in REDIS_URL) is plumbing, not a setting,
      // also in a container of the same pod that shares the ConfigMap but does not spell it (the migration).
      const spelled = containers.flatMap((c) => (c.env ?? []).map((e) => e.value ?? '')).join(' ');
      for (const container of containers) {
        const env = environment(objects, container);
        const unknown = Object.keys(env).filter(
          (name) => !known.has(name) && !spelled.includes(`$(${name})`),
        );
        expect([pod.owner, unknown]).toEqual([pod.owner, []]);
        const config = loadConfig(env, { dotEnv: false });
        // CloudNativePG keeps the database's point-in-time recovery: trendgen streams no WAL, only objects.
        expect(config.backup.databasePitr).toBe('cloudnativepg');
        expect(streamsWal(config)).toBe(false);
        expect(whoProtects(config, [])[0]).toMatchObject({ data: 'postgres', by: 'CloudNativePG' });
        expect(config.livenessFile).toBe('/tmp/trendgen-alive');
        // The master is the one the Sentinels name; REDIS_URL, where a pod has it, gives its password.
        expect(config.redisUrl).toMatch(
          /^redis\+sentinel:\/\/(:[^@]+@)?trendgen-sentinel-0\.trendgen-sentinel:26379,.*\/trendgen\/0$/,
        );
        if (env.REDIS_URL) expect(config.redisUrl).toContain(':redispassword0123@');
        expect(config.storageUrl).toMatch(/^s3:\/\//);
        if (container.args?.[0] !== 'migrate') {
          expect(config.backup.password).toBeTruthy();
          // The offsite target in the other region, with the Secret's credentials as issued.
          expect(config.backup.offsiteTargets.map((t) => [t.name, t.url, t.s3.region])).toEqual([
            ['region-b', 's3://trendgen-offsite-region-b/backups', 'eu-central-1'],
          ]);
          expect(config.backup.offsiteTargets[0]!.s3.secretAccessKey).toBe(
            SECRET_VALUES['trendgen-offsite/AWS_SECRET_ACCESS_KEY'],
          );
        }
        // Every folder the settings name is a volume of this pod (the root filesystem is read-only).
        const mounts = container.volumeMounts?.map((m) => m.mountPath) ?? [];
        expect(mounts).toContain(config.dataDir);
        if (container.args?.[0] !== 'migrate') expect(mounts).toContain('/tmp');
      }
    }
  });

  it('the shared folders are ReadWriteMany volumes, mounted where each process needs them', () => {
    const mountsOf = (owner: string) =>
      trendgenPods(objects)
        .find((p) => p.owner === owner)!
        .spec.containers[0]!.volumeMounts!.map((m) => m.mountPath);
    // The api's prompt watcher and user-data ledger, the scheduler's snapshots, the object stream.
    for (const owner of ['Deployment/trendgen-api', 'Deployment/trendgen-scheduler'])
      expect(mountsOf(owner)).toEqual(expect.arrayContaining(['/prompts', '/backups']));
    expect(mountsOf('Deployment/trendgen-object-stream')).toContain('/backups');
    for (const claim of ['trendgen-prompts', 'trendgen-backups'])
      expect(one(objects, 'PersistentVolumeClaim', claim).spec.accessModes).toEqual(['ReadWriteMany']);
  });

  it('REDIS_SENTINELS names every Sentinel pod and REDIS_SENTINEL_MASTER the master they monitor', () => {
    const settings = objects.find((o) => o.kind === 'ConfigMap' && o.data?.REDIS_SENTINELS)!.data!;
    const sentinel = one(objects, 'StatefulSet', 'trendgen-sentinel').spec;
    const expected = Array.from(
      { length: sentinel.replicas },
      (_, i) =>
        `trendgen-sentinel-${i}.${sentinel.serviceName}:${one(objects, 'Service', sentinel.serviceName).spec.ports[0].port}`,
    );
    expect(settings.REDIS_SENTINELS!.split(',')).toEqual(expected);
    const script = readFileSync(path.join(K8S_DIR, 'base/redis/sentinel-init.sh'), 'utf8');
    expect(script).toContain(`sentinel monitor ${settings.REDIS_SENTINEL_MASTER} $master 6379 2`);
    expect(script).toContain(`get-master-addr-by-name ${settings.REDIS_SENTINEL_MASTER}`);
    const redis = one(objects, 'StatefulSet', 'trendgen-redis').spec;
    expect(redis.replicas).toBe(3);
    expect(sentinel.replicas).toBe(3);
    for (const set of [redis, sentinel])
      for (const c of set.template.spec.containers) expect(c.image).toMatch(/^redis:7\.0$/);
    expect(redis.volumeClaimTemplates[0].spec.resources.requests.storage).toBeTruthy();
  });
});

/** Runs one of the init scripts as the pod `host` would, with its folders moved under `dir`. */
function runInitScript(dir: string, script: string, host: string, password: string): string {
  const bin = path.join(dir, `bin-${host}`);
  mkdirSync(bin, { recursive: true });
  writeFileSync(path.join(bin, 'hostname'), `#!/bin/sh\necho ${host}\n`);
  chmodSync(path.join(bin, 'hostname'), 0o755);
  const out = path.join(dir, host);
  mkdirSync(out, { recursive: true });
  const text = readFileSync(path.join(K8S_DIR, 'base/redis', script), 'utf8')
    .replaceAll('/config/', `${path.join(K8S_DIR, 'base/redis')}/`)
    .replaceAll(/\/run\/(redis|sentinel)\//g, `${out}/`);
  const result = spawnSync('sh', ['-c', text], {
    encoding: 'utf8',
    env: { PATH: `${bin}:${process.env.PATH}`, REDIS_PASSWORD: password },
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return readFileSync(path.join(out, script.startsWith('redis') ? 'redis.conf' : 'sentinel.conf'), 'utf8');
}

describe('Kubernetes manifests: the Redis and Sentinel configuration runs on redis-server 7.0', () => {
  const scratch = tempDir('k8s-redis');
  const children: ChildProcess[] = [];
  const password = 'redispassword0123';
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    scratch.remove();
  });

  const start = async (conf: string, port: number, extra: string[] = []) => {
    const data = path.join(scratch.dir, `data-${port}`);
    mkdirSync(data);
    const file = path.join(data, 'server.conf');
    // The pod's folders (/data, /tmp) are this test's; everything else is the file as the pod has it.
    writeFileSync(file, conf.replace(/^dir .*$/m, `dir ${data}`));
    const child = spawn('redis-server', [file, ...extra, '--port', String(port), '--bind', '127.0.0.1']);
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    children.push(child);
    await waitFor(
      `redis-server on ${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
        return (await isPortFree(port)) ? undefined : true;
      },
      10_000,
    );
    const sentinel = extra.includes('--sentinel');
    return new Redis({ port, maxRetriesPerRequest: 1, ...(sentinel ? {} : { password }) });
  };

  it('redis-init.sh: pod 0 starts as master with AOF, refusing writes until a replica follows; pod 1 replicates', async () => {
    const first = runInitScript(scratch.dir, 'redis-init.sh', 'trendgen-redis-0', password);
    expect(first).not.toMatch(/^replicaof/m);
    expect(runInitScript(scratch.dir, 'redis-init.sh', 'trendgen-redis-1', password)).toMatch(
      /^replicaof trendgen-redis-0\.trendgen-redis 6379$/m,
    );
    const port = await freePort();
    const master = await start(first, port);
    try {
      expect(await master.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await master.config('GET', 'appendfsync')).toEqual(['appendfsync', 'everysec']);
      expect(await master.info('replication')).toContain('role:master');
      // min-replicas-to-write: a master no replica follows takes no writes it could lose in a failover.
      await expect(master.set('k', 'v')).rejects.toThrow(/NOREPLICAS/);
      const anonymous = new Redis({ port, maxRetriesPerRequest: 1 });
      anonymous.on('error', () => {});
      await expect(anonymous.get('k')).rejects.toThrow(/NOAUTH/);
      anonymous.disconnect();
    } finally {
      master.disconnect();
    }
  });

  it('sentinel-init.sh: the Sentinel monitors the master with its password and answers where it is', async () => {
    const redisPort = await freePort();
    const master = await start(
      runInitScript(scratch.dir, 'redis-init.sh', 'trendgen-redis-0', password),
      redisPort,
    );
    const conf = runInitScript(scratch.dir, 'sentinel-init.sh', 'trendgen-sentinel-0', password).replace(
      'trendgen-redis-0.trendgen-redis 6379',
      `127.0.0.1 ${redisPort}`,
    );
    const sentinel = await start(conf, await freePort(), ['--sentinel']);
    try {
      expect(await sentinel.call('SENTINEL', 'get-master-addr-by-name', 'trendgen')).toEqual([
        '127.0.0.1',
        String(redisPort),
      ]);
      // The Sentinel reads the master's INFO with auth-pass: it then knows the master's run id.
      const fields = await waitFor(
        'the Sentinel to read the master',
        async () => {
          const reply = (await sentinel.call('SENTINEL', 'master', 'trendgen')) as string[];
          const map = Object.fromEntries(reply.flatMap((v, i) => (i % 2 ? [] : [[v, reply[i + 1]]])));
          return map['runid'] ? map : undefined;
        },
        10_000,
      );
      expect(fields.flags).toBe('master');
      expect(fields.quorum).toBe('2');
      expect(fields['down-after-milliseconds']).toBe('5000');
    } finally {
      sentinel.disconnect();
      master.disconnect();
    }
  });
});
