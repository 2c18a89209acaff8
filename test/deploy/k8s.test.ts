import path from 'node:path';
import type { Model } from '@kubernetes-models/base';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ROOT, read } from './deploy-files.ts';
import { undocumentedFields } from './k8s-crd-fields.ts';
import {
  byKind,
  K8S_DIR,
  type K8sObject,
  OVERLAYS,
  type Overlay,
  one,
  render,
  unknownFields,
} from './k8s-render.ts';

/** Each core kind: its kubernetes-models class, and the module and interface its TypeScript declaration has. */
const CORE: Record<string, { model: new (data: never) => Model<unknown>; module: string; type: string }> = {
  Deployment: { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  StatefulSet: { model: StatefulSet, module: 'kubernetes-models/apps/v1/StatefulSet', type: 'IStatefulSet' },
  Job: { model: Job, module: 'kubernetes-models/batch/v1/Job', type: 'IJob' },
  Service: { model: Service, module: 'kubernetes-models/v1/Service', type: 'IService' },
  ConfigMap: { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  ServiceAccount: {
    model: ServiceAccount,
    module: 'kubernetes-models/v1/ServiceAccount',
    type: 'IServiceAccount',
  },
  PersistentVolumeClaim: {
    model: PersistentVolumeClaim,
    module: 'kubernetes-models/v1/PersistentVolumeClaim',
    type: 'IPersistentVolumeClaim',
  },
  PodDisruptionBudget: {
    model: PodDisruptionBudget,
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    type: 'IPodDisruptionBudget',
  },
  HorizontalPodAutoscaler: {
    model: HorizontalPodAutoscaler,
    module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    type: 'IHorizontalPodAutoscaler',
  },
  NetworkPolicy: {
    model: NetworkPolicy,
    module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
    type: 'INetworkPolicy',
  },
  // prometheus-operator's resources, from @kubernetes-models/prometheus-operator (its CRDs' schemas).
  PodMonitor: {
    model: PodMonitor,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
    type: 'IPodMonitor',
  },
  PrometheusRule: {
    model: PrometheusRule,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    type: 'IPrometheusRule',
  },
};
/** CloudNativePG's and the Barman Cloud plugin's resources: checked against k8s-crd-fields.ts. */
const DOCUMENTED_CRDS = ['Cluster', 'ScheduledBackup', 'ObjectStore'];

const validationErrors = (objects: K8sObject[]) =>
  objects.flatMap((object) => {
    try {
      new CORE[object.kind]!.model(object as never).validate();
      return [];
    } catch (error) {
      return [`${object.kind}/${object.metadata.name}: ${(error as Error).message}`];
    }
  });

const strictCheck = (objects: K8sObject[]) =>
  unknownFields(
    objects.map((object) => ({
      object,
      ...CORE[object.kind]!,
      label: `${object.kind}/${object.metadata.name}`,
    })),
  );

describe('Kubernetes manifests (deploy/k8s): rendered by kubectl kustomize and checked offline', () => {
  const rendered = {} as Record<Overlay, K8sObject[]>;
  let pitr: K8sObject[];
  beforeAll(() => {
    for (const overlay of OVERLAYS) rendered[overlay] = render(`overlays/${overlay}`);
    pitr = parseAllDocuments(read(path.join(K8S_DIR, 'examples/pitr-restore.yaml'))).map(
      (d) => d.toJS() as K8sObject,
    );
  });
  const all = () => OVERLAYS.flatMap((overlay) => rendered[overlay]);

  it('both overlays render, into the namespace trendgen, and every kind is one this test validates', () => {
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      expect(objects.length).toBeGreaterThan(25);
      expect(objects.filter((o) => o.metadata.namespace !== 'trendgen')).toEqual([]);
      const kinds = new Set(objects.map((o) => o.kind));
      expect([...kinds].filter((k) => !(k in CORE) && !DOCUMENTED_CRDS.includes(k))).toEqual([]);
      for (const kind of ['Deployment', 'StatefulSet', 'Cluster', 'ObjectStore', 'ScheduledBackup'])
        expect(kinds).toContain(kind);
    }
  });

  it('every core and prometheus-operator object validates against its schema and has no field the schema lacks', () => {
    const core = all().filter((o) => o.kind in CORE);
    expect(core.length).toBeGreaterThan(50);
    expect(validationErrors(core)).toEqual([]);
    expect(strictCheck(core)).toEqual([]);
  });

  it('the CloudNativePG and Barman Cloud objects use only fields their documentation defines', () => {
    const crds = [...all(), ...pitr].filter((o) => DOCUMENTED_CRDS.includes(o.kind));
    expect(crds.length).toBeGreaterThanOrEqual(7);
    expect(
      crds.flatMap((o) => undocumentedFields(o).map((p) => `${o.kind}/${o.metadata.name}: ${p}`)),
    ).toEqual([]);
  });

  it('the validators catch mistakes: a wrong type, a misspelled field, an undocumented CRD field, a bad enum', () => {
    const api = structuredClone(one(rendered['single-region'], 'Deployment', 'trendgen-api'));
    api.spec.replicas = 'two';
    expect(validationErrors([api])).toEqual([expect.stringContaining('replicas must be integer')]);
    const typo = structuredClone(one(rendered['single-region'], 'Deployment', 'trendgen-api'));
    typo.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 'http' } };
    expect(validationErrors([typo])).toEqual([]);
    expect(strictCheck([typo])).toEqual([expect.stringContaining('\'"readinesProbe"\' does not exist')]);
    const cluster = structuredClone(one(rendered['single-region'], 'Cluster', 'trendgen-pg'));
    cluster.spec.postgresql.synchronous.methd = 'any';
    cluster.spec.primaryUpdateStrategy = 'automatic';
    expect(undocumentedFields(cluster).sort()).toEqual([
      'spec.postgresql.synchronous.methd is not a documented field',
      'spec.primaryUpdateStrategy must be one of unsupervised,supervised, is "automatic"',
    ]);
  });

  it('PostgreSQL: 3 instances, a synchronous standby, data checksums, WAL archiving and nightly base backups', () => {
    const objects = rendered['single-region'];
    const { spec } = one(objects, 'Cluster', 'trendgen-pg');
    expect(spec.instances).toBe(3);
    expect(spec.postgresql.synchronous).toEqual({ method: 'any', number: 1, dataDurability: 'required' });
    expect(spec.bootstrap.initdb).toEqual({ database: 'trends', owner: 'trends', dataChecksums: true });
    // The pg_dump of the trendgen image is 15 (deploy/Dockerfile): it refuses a newer server.
    expect(spec.imageName).toMatch(/:15[.-]/);
    expect(read(path.join(ROOT, 'deploy/Dockerfile'))).toContain('postgresql-client-15');
    const [archiver] = spec.plugins.filter((p: { isWALArchiver?: boolean }) => p.isWALArchiver);
    expect(archiver.name).toBe('barman-cloud.cloudnative-pg.io');
    const store = one(objects, 'ObjectStore', archiver.parameters.barmanObjectName).spec;
    expect(store.retentionPolicy).toBe('14d');
    expect(store.configuration.wal.compression).toBeTruthy();
    const backup = one(objects, 'ScheduledBackup', 'trendgen-pg-nightly').spec;
    expect(backup).toMatchObject({
      cluster: { name: 'trendgen-pg' },
      method: 'plugin',
      pluginConfiguration: { name: archiver.name },
    });
  });

  it('dr-region: a replica cluster fed from the first region’s archive; trendgen on standby; backups in both regions', () => {
    const first = rendered['single-region'];
    const dr = rendered['dr-region'];
    const { spec } = one(dr, 'Cluster', 'trendgen-pg');
    expect(spec.replica).toEqual({ enabled: true, source: 'trendgen-pg-primary-region' });
    expect(spec.bootstrap).toEqual({ recovery: { source: spec.replica.source } });
    const source = spec.externalClusters.find((c: { name: string }) => c.name === spec.replica.source);
    expect(source.plugin.parameters.serverName).toBe('trendgen-pg');
    // It reads exactly where the first region archives, and archives somewhere else itself.
    const readFrom = one(dr, 'ObjectStore', source.plugin.parameters.barmanObjectName).spec.configuration;
    const firstArchive = one(first, 'ObjectStore', 'trendgen-pg-backups').spec.configuration;
    expect(readFrom.destinationPath).toBe(firstArchive.destinationPath);
    expect(one(dr, 'ObjectStore', 'trendgen-pg-backups').spec.configuration.destinationPath).not.toBe(
      firstArchive.destinationPath,
    );
    // trendgen is installed but runs nothing against the read-only database until the promotion.
    for (const d of byKind(dr, 'Deployment'))
      expect([d.metadata.name, d.spec.replicas]).toEqual([d.metadata.name, 0]);
    // Each region's trendgen keeps its offsite copy in the other region's bucket.
    const settings = (objects: K8sObject[]) =>
      byKind(objects, 'ConfigMap').find((c) => c.data?.BACKUP_S3_URI)!.data!;
    const [a, b] = [settings(first), settings(dr)];
    const bucket = (uri: string) => new URL(uri).host;
    expect(bucket(a.BACKUP_S3_URI!)).toMatch(/region-b/);
    expect(bucket(b.BACKUP_S3_URI!)).toMatch(/region-a/);
    expect(bucket(a.STORAGE_URL!)).toMatch(/region-a/);
    expect(bucket(b.STORAGE_URL!)).toMatch(/region-b/);
  });

  it('the PITR example restores a moment from the archive into a folder of its own', () => {
    const [restore] = pitr;
    expect(restore!.kind).toBe('Cluster');
    const { recovery } = restore!.spec.bootstrap;
    expect(Number.isNaN(Date.parse(recovery.recoveryTarget.targetTime))).toBe(false);
    const source = restore!.spec.externalClusters.find((c: { name: string }) => c.name === recovery.source);
    expect(source.plugin.parameters).toEqual({
      barmanObjectName: 'trendgen-pg-backups',
      serverName: 'trendgen-pg',
    });
    expect(restore!.spec.plugins[0].parameters.serverName).not.toBe(source.plugin.parameters.serverName);
    // Not part of any overlay: applied by hand, only when a restore is wanted.
    expect(all().filter((o) => o.metadata.name === restore!.metadata.name)).toEqual([]);
  });
});
