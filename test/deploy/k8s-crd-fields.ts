import { ResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';

/**
 * The fields of CloudNativePG's and its Barman Cloud plugin's custom resources that deploy/k8s uses, each as
 * their documentation defines it. No schema package of these CRDs exists on npm, so the definitions are written
 * here, one line per field, from:
 * - CloudNativePG's API reference (postgresql.cnpg.io/v1): ClusterSpec, PostgresConfiguration,
 *   SynchronousReplicaConfiguration ("Synchronous Replication" in replication.md), BootstrapConfiguration,
 *   BootstrapInitDB, BootstrapRecovery, RecoveryTarget, StorageConfiguration, AffinityConfiguration,
 *   PluginConfiguration, ReplicaClusterConfiguration, ExternalCluster, ScheduledBackupSpec,
 *   LocalObjectReference, BackupPluginConfiguration;
 * - the Barman Cloud plugin's API reference (barmancloud.cnpg.io/v1): ObjectStoreSpec (retentionPolicy's
 *   pattern), InstanceSidecarConfiguration, and BarmanObjectStoreConfiguration with its S3Credentials,
 *   WalBackupConfiguration and DataBackupConfiguration (compression enums as the CRD lists them), plus the
 *   plugin's parameters barmanObjectName and serverName.
 * A field used in a manifest but missing here fails the test: add it only after finding it in those documents.
 */
export type FieldRule =
  | 'string'
  | 'boolean'
  | 'integer'
  | 'quantity'
  | 'string-map'
  | 'resources'
  | { enum: string[] }
  | { pattern: RegExp };

const secretKeySelector = (prefix: string): Record<string, FieldRule> => ({
  [`${prefix}.name`]: 'string',
  [`${prefix}.key`]: 'string',
});

const metadata: Record<string, FieldRule> = {
  'metadata.name': 'string',
  'metadata.namespace': 'string',
  'metadata.labels': 'string-map',
  'metadata.annotations': 'string-map',
};

const pluginParameters = (prefix: string): Record<string, FieldRule> => ({
  [`${prefix}.name`]: 'string',
  [`${prefix}.parameters.barmanObjectName`]: 'string',
  [`${prefix}.parameters.serverName`]: 'string',
});

export const DOCUMENTED_FIELDS: Record<string, Record<string, FieldRule>> = {
  'postgresql.cnpg.io/v1 Cluster': {
    ...metadata,
    'spec.instances': 'integer',
    'spec.imageName': 'string',
    'spec.primaryUpdateStrategy': { enum: ['unsupervised', 'supervised'] },
    'spec.primaryUpdateMethod': { enum: ['switchover', 'restart'] },
    'spec.postgresql.parameters': 'string-map',
    'spec.postgresql.synchronous.method': { enum: ['any', 'first'] },
    'spec.postgresql.synchronous.number': 'integer',
    'spec.postgresql.synchronous.dataDurability': { enum: ['required', 'preferred'] },
    'spec.bootstrap.initdb.database': 'string',
    'spec.bootstrap.initdb.owner': 'string',
    'spec.bootstrap.initdb.dataChecksums': 'boolean',
    'spec.bootstrap.recovery.source': 'string',
    'spec.bootstrap.recovery.recoveryTarget.targetTime': 'string',
    'spec.bootstrap.recovery.recoveryTarget.exclusive': 'boolean',
    'spec.storage.size': 'quantity',
    'spec.storage.storageClass': 'string',
    'spec.walStorage.size': 'quantity',
    'spec.walStorage.storageClass': 'string',
    'spec.resources': 'resources',
    'spec.affinity.enablePodAntiAffinity': 'boolean',
    'spec.affinity.podAntiAffinityType': { enum: ['preferred', 'required'] },
    'spec.affinity.topologyKey': 'string',
    ...pluginParameters('spec.plugins[]'),
    'spec.plugins[].isWALArchiver': 'boolean',
    'spec.plugins[].enabled': 'boolean',
    'spec.replica.enabled': 'boolean',
    'spec.replica.source': 'string',
    'spec.externalClusters[].name': 'string',
    ...pluginParameters('spec.externalClusters[].plugin'),
  },
  'postgresql.cnpg.io/v1 ScheduledBackup': {
    ...metadata,
    // Six fields, seconds first (robfig/cron with seconds).
    'spec.schedule': { pattern: /^(\S+\s+){5}\S+$/ },
    'spec.immediate': 'boolean',
    'spec.backupOwnerReference': { enum: ['none', 'self', 'cluster'] },
    'spec.cluster.name': 'string',
    'spec.method': { enum: ['barmanObjectStore', 'volumeSnapshot', 'plugin'] },
    'spec.pluginConfiguration.name': 'string',
    'spec.target': { enum: ['primary', 'prefer-standby'] },
  },
  'barmancloud.cnpg.io/v1 ObjectStore': {
    ...metadata,
    'spec.retentionPolicy': { pattern: /^[1-9][0-9]*[dwm]$/ },
    'spec.configuration.destinationPath': { pattern: /^s3:\/\/[^/]+/ },
    'spec.configuration.endpointURL': 'string',
    ...secretKeySelector('spec.configuration.endpointCA'),
    ...secretKeySelector('spec.configuration.s3Credentials.accessKeyId'),
    ...secretKeySelector('spec.configuration.s3Credentials.secretAccessKey'),
    ...secretKeySelector('spec.configuration.s3Credentials.region'),
    'spec.configuration.s3Credentials.inheritFromIAMRole': 'boolean',
    'spec.configuration.wal.compression': { enum: ['bzip2', 'gzip', 'lz4', 'snappy', 'xz', 'zstd'] },
    'spec.configuration.wal.maxParallel': 'integer',
    'spec.configuration.data.compression': { enum: ['bzip2', 'gzip', 'snappy'] },
    'spec.configuration.data.jobs': 'integer',
    'spec.instanceSidecarConfiguration.resources': 'resources',
  },
};

function checkLeaf(rule: FieldRule, value: unknown): string | undefined {
  const fail = (what: string) => `must be ${what}, is ${JSON.stringify(value)}`;
  if (rule === 'string') return typeof value === 'string' ? undefined : fail('a string');
  if (rule === 'boolean') return typeof value === 'boolean' ? undefined : fail('a boolean');
  if (rule === 'integer') return Number.isInteger(value) ? undefined : fail('an integer');
  if (rule === 'quantity')
    return typeof value === 'string' && /^\d+(\.\d+)?([KMGTPE]i?|[mk])?$/.test(value)
      ? undefined
      : fail('a quantity');
  if (rule === 'string-map') {
    const ok = value && typeof value === 'object' && Object.values(value).every((v) => typeof v === 'string');
    return ok ? undefined : fail('a map of strings');
  }
  if (rule === 'resources') {
    try {
      new ResourceRequirements(value as object).validate();
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }
  if ('enum' in rule) return rule.enum.includes(value as string) ? undefined : fail(`one of ${rule.enum}`);
  return typeof value === 'string' && rule.pattern.test(value) ? undefined : fail(`like ${rule.pattern}`);
}

/** Every field of a custom resource that its documented definitions above lack or that has the wrong value. */
export function undocumentedFields(object: { apiVersion: string; kind: string }): string[] {
  const fields = DOCUMENTED_FIELDS[`${object.apiVersion} ${object.kind}`];
  if (!fields) return [`${object.apiVersion} ${object.kind} has no documented fields here`];
  const problems: string[] = [];
  const walk = (value: unknown, at: string): void => {
    const rule = fields[at];
    if (rule) {
      const problem = checkLeaf(rule, value);
      if (problem) problems.push(`${at} ${problem}`);
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item, `${at}[]`);
    } else if (value && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) walk(child, at ? `${at}.${key}` : key);
    } else {
      problems.push(`${at} is not a documented field`);
    }
  };
  const { apiVersion: _a, kind: _k, ...rest } = object as Record<string, unknown>;
  walk(rest, '');
  return problems;
}
