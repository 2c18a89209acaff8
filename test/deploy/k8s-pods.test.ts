import { spawnSync } from 'node:child_process';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { tempDir } from '../support/temp.ts';
import { findPromtool, ROOT, read } from './deploy-files.ts';
import {
  byKind,
  cnpgInstancePods,
  containersOf,
  K8S_DIR,
  type K8sObject,
  OVERLAYS,
  type Overlay,
  one,
  podTemplates,
  render,
  selects,
} from './k8s-render.ts';

/** Secrets an object names: env's secretKeyRef, envFrom's secretRef, an object store's S3 credentials. */
function secretNames(node: unknown, key = ''): string[] {
  if (!node || typeof node !== 'object') return [];
  const here =
    ['secretKeyRef', 'secretRef', 'accessKeyId', 'secretAccessKey', 'region', 'sessionToken'].includes(key) &&
    typeof (node as { name?: unknown }).name === 'string'
      ? [(node as { name: string }).name]
      : [];
  return [
    ...here,
    ...Object.entries(node).flatMap(([k, v]) => secretNames(v, Array.isArray(node) ? key : k)),
  ];
}

describe('Kubernetes manifests: pods, secrets, network and monitoring', () => {
  const rendered = {} as Record<Overlay, K8sObject[]>;
  beforeAll(() => {
    for (const overlay of OVERLAYS) rendered[overlay] = render(`overlays/${overlay}`);
  });
  const objects = () => rendered['single-region'];

  it('no Secret is committed: none is rendered, no generator holds one, and each referenced Secret is in the README', () => {
    const all = OVERLAYS.flatMap((o) => rendered[o]);
    expect(all.filter((o) => o.kind === 'Secret' || o.stringData)).toEqual([]);
    expect(all.filter((o) => o.data && o.kind !== 'ConfigMap')).toEqual([]);
    const kustomizations = spawnSync('find', [K8S_DIR, '-name', 'kustomization.yaml'], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    expect(kustomizations.length).toBe(3);
    for (const file of kustomizations)
      expect(parse(readFileSync(file, 'utf8')).secretGenerator).toBeUndefined();
    const referenced = new Set(all.flatMap((o) => secretNames(o)));
    expect([...referenced].sort()).toEqual([
      'trendgen-app',
      'trendgen-offsite',
      'trendgen-pg-app',
      'trendgen-pg-backup-s3',
      'trendgen-pg-primary-region-s3',
      'trendgen-redis',
      'trendgen-s3',
    ]);
    const readme = read(path.join(K8S_DIR, 'README.md'));
    for (const name of referenced) expect(readme).toContain(name);
  });

  it('every container has CPU and memory requests and limits; HTTP ones probe /readyz and /healthz', () => {
    const noProbes: string[] = [];
    const heartbeatProbes: Array<[string, string[]]> = [];
    for (const pod of podTemplates(objects())) {
      for (const { container, init } of containersOf(pod.spec)) {
        const where = `${pod.owner} ${container.name}`;
        for (const kind of ['requests', 'limits'] as const)
          expect([where, Object.keys(container.resources?.[kind] ?? {}).sort()]).toEqual([
            where,
            ['cpu', 'memory'],
          ]);
        if (init) continue;
        if (container.ports?.some((p) => p.name === 'http')) {
          expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
          expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
        } else if (container.name === 'trendgen') {
          heartbeatProbes.push([where, container.livenessProbe?.exec?.command ?? []]);
        } else if (container.readinessProbe || container.livenessProbe) {
          expect([where, container.livenessProbe?.exec?.command.join(' ')]).toEqual([
            where,
            expect.stringContaining('redis-cli'),
          ]);
        } else noProbes.push(where);
      }
    }
    expect(noProbes).toEqual([]);
    // The worker, the scheduler and the object stream serve no HTTP: their probe reads the file each touches at
    // every healthy heartbeat (LIVENESS_FILE).
    expect(heartbeatProbes.map(([where]) => where).sort()).toEqual([
      'Deployment/trendgen-object-stream trendgen',
      'Deployment/trendgen-scheduler trendgen',
      'Deployment/trendgen-worker trendgen',
    ]);
    const env = read(path.join(K8S_DIR, 'base/app/trendgen.env'));
    const file = /^LIVENESS_FILE=(.+)$/m.exec(env)?.[1];
    expect(file).toBe('/tmp/trendgen-alive');
    for (const [, command] of heartbeatProbes) expect(command.join(' ')).toContain(file);
  });

  it('the heartbeat probe passes on a fresh file and fails on one over a minute old or missing (run in sh)', () => {
    const worker = podTemplates(objects()).find((p) => p.owner === 'Deployment/trendgen-worker')!;
    const command = worker.spec.containers[0]!.livenessProbe!.exec!.command;
    const temp = tempDir('heartbeat-probe');
    try {
      const file = path.join(temp.dir, 'alive');
      const run = () =>
        spawnSync(
          command[0]!,
          command.slice(1).map((a) => a.replaceAll('/tmp/trendgen-alive', file)),
        ).status;
      expect(run()).not.toBe(0);
      writeFileSync(file, '');
      expect(run()).toBe(0);
      const old = new Date(Date.now() - 90_000);
      utimesSync(file, old, old);
      expect(run()).not.toBe(0);
    } finally {
      temp.remove();
    }
  });

  it('NetworkPolicies: only the api is open to the outside, only trendgen reaches PostgreSQL and Redis', () => {
    const pods = [...podTemplates(objects()), ...cnpgInstancePods(objects())];
    const policies = byKind(objects(), 'NetworkPolicy');
    const selected = (selector: object) =>
      pods.filter((p) => selects(selector, p.labels)).map((p) => p.owner);
    // Every selector selects pods, and every pod is behind the default deny.
    for (const policy of policies) {
      expect([policy.metadata.name, selected(policy.spec.podSelector).length > 0]).toEqual([
        policy.metadata.name,
        true,
      ]);
      for (const rule of policy.spec.ingress ?? [])
        for (const peer of rule.from ?? [])
          if (peer.podSelector) expect(selected(peer.podSelector).length).toBeGreaterThan(0);
    }
    expect(selected(one(objects(), 'NetworkPolicy', 'default-deny-ingress').spec.podSelector)).toHaveLength(
      pods.length,
    );
    /** Who may reach a pod on a port: 'anyone', namespaces by name, or the owners of the pods allowed. */
    const reach = (owner: string, port: number) => {
      const pod = pods.find((p) => p.owner === owner)!;
      const rules = policies
        .filter((p) => selects(p.spec.podSelector, pod.labels))
        .flatMap((p) => p.spec.ingress ?? [])
        .filter((r: { ports?: Array<{ port: number }> }) => !r.ports || r.ports.some((p) => p.port === port));
      const from = new Set<string>();
      for (const rule of rules) {
        if (!rule.from) from.add('anyone');
        for (const peer of rule.from ?? []) {
          if (peer.namespaceSelector)
            from.add(`namespace ${peer.namespaceSelector.matchLabels['kubernetes.io/metadata.name']}`);
          else for (const p of selected(peer.podSelector)) from.add(p);
        }
      }
      return [...from].sort();
    };
    const open = pods.filter((p) =>
      [8080, 5432, 6379, 26379].some((port) => reach(p.owner, port).includes('anyone')),
    );
    expect(open.map((p) => p.owner)).toEqual(['Deployment/trendgen-api']);
    const trendgen = podTemplates(objects())
      .filter((p) => p.labels['app.kubernetes.io/name'] === 'trendgen')
      .map((p) => p.owner);
    expect(reach('Cluster/trendgen-pg', 5432)).toEqual(
      ['Cluster/trendgen-pg', 'namespace cnpg-system', ...trendgen].sort(),
    );
    const redisPods = ['StatefulSet/trendgen-redis', 'StatefulSet/trendgen-sentinel'];
    for (const owner of redisPods)
      for (const port of [6379, 26379])
        expect(reach(owner, port)).toEqual([...redisPods, ...trendgen].sort());
  });

  it('every Service, PodDisruptionBudget, autoscaler and PodMonitor points at pods or objects that exist', () => {
    const pods = [...podTemplates(objects()), ...cnpgInstancePods(objects())];
    const owners = (selector: object) => pods.filter((p) => selects(selector, p.labels)).map((p) => p.owner);
    for (const service of byKind(objects(), 'Service'))
      expect(owners({ matchLabels: service.spec.selector }).length).toBeGreaterThan(0);
    for (const pdb of byKind(objects(), 'PodDisruptionBudget'))
      expect(owners(pdb.spec.selector)).toHaveLength(1);
    for (const hpa of byKind(objects(), 'HorizontalPodAutoscaler')) {
      const target = one(objects(), hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
      expect(target.spec.replicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
    }
    expect(owners(one(objects(), 'PodMonitor', 'trendgen').spec.selector)).toEqual([
      'Deployment/trendgen-api',
    ]);
    expect(owners(one(objects(), 'PodMonitor', 'trendgen-pg').spec.selector)).toEqual([
      'Cluster/trendgen-pg',
    ]);
    const api = podTemplates(objects()).find((p) => p.owner === 'Deployment/trendgen-api')!;
    const monitor = one(objects(), 'PodMonitor', 'trendgen').spec;
    // alerts.yml's TrendgenDown asks for up{job="trendgen"}: the job is the value of the pods' jobLabel.
    expect(api.labels[monitor.jobLabel]).toBe('trendgen');
    expect(api.spec.containers[0]!.ports!.map((p) => p.name)).toContain(monitor.podMetricsEndpoints[0].port);
  });

  it('the PrometheusRule holds deploy/prometheus/alerts.yml rule for rule, and promtool accepts every group', () => {
    const alerts = parse(read(path.join(ROOT, 'deploy/prometheus/alerts.yml')));
    const rule = one(objects(), 'PrometheusRule', 'trendgen');
    expect(rule.spec.groups, 'run `node scripts/k8s-rules.mjs` after editing alerts.yml').toEqual(
      alerts.groups,
    );
    const scratch = tempDir('k8s-rules');
    try {
      for (const r of byKind(objects(), 'PrometheusRule')) {
        const file = path.join(scratch.dir, `${r.metadata.name}.yml`);
        writeFileSync(file, JSON.stringify({ groups: r.spec.groups }));
        const check = spawnSync(findPromtool(), ['check', 'rules', file], { encoding: 'utf8' });
        expect(`${check.stdout}${check.stderr}`).toContain('SUCCESS');
        expect(check.status).toBe(0);
      }
    } finally {
      scratch.remove();
    }
    const pg = one(objects(), 'PrometheusRule', 'trendgen-pg').spec.groups.flatMap(
      (g: { rules: unknown[] }) => g.rules,
    );
    expect(pg.map((r: { expr: string }) => r.expr).join('\n')).toMatch(
      /cnpg_pg_stat_archiver_last_failed_time/,
    );
  });
});
