import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './deploy-files.ts';

export const K8S_DIR = path.join(ROOT, 'deploy/k8s');
export const OVERLAYS = ['single-region', 'dr-region'] as const;
export type Overlay = (typeof OVERLAYS)[number];

export type Labels = Record<string, string>;
export interface Selector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}
export interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string } };
  }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
  exec?: { command: string[] };
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }>;
}
/** One rendered object; `spec` and `data` are left loose, each test reads what it checks. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels };
  // biome-ignore lint/suspicious/noExplicitAny: a rendered manifest of any kind
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** kubectl from $KUBECTL or PATH: the machines have it (with kustomize built in); nothing else renders overlays. */
export function findKubectl(): string {
  const candidates = [process.env.KUBECTL, '/usr/bin/kubectl'];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  if (spawnSync('kubectl', ['version', '--client']).status === 0) return 'kubectl';
  throw new Error(
    'kubectl is missing: the Kubernetes manifests are rendered with `kubectl kustomize` (kubectl 1.27 or newer). Install kubectl, or set KUBECTL to its path.',
  );
}

/** `kubectl kustomize` of a folder under deploy/k8s, as objects. */
export function render(dir: string): K8sObject[] {
  const result = spawnSync(findKubectl(), ['kustomize', path.join(K8S_DIR, dir)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((doc) => doc.toJS() as K8sObject);
}

export const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

export function one(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return found;
}

/** The pods an object runs: Deployments, StatefulSets and Jobs by their templates. */
export interface PodTemplate {
  owner: string;
  labels: Labels;
  spec: PodSpec;
}
export function podTemplates(objects: K8sObject[]): PodTemplate[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind))
    .map((o) => ({
      owner: `${o.kind}/${o.metadata.name}`,
      labels: o.spec.template.metadata?.labels ?? {},
      spec: o.spec.template.spec,
    }));
}

/**
 * The pods CloudNativePG makes for a Cluster, with the labels its documentation defines ("Predefined labels":
 * cnpg.io/cluster on every pod of the cluster, cnpg.io/podRole=instance on the PostgreSQL instances).
 */
export function cnpgInstancePods(objects: K8sObject[]): PodTemplate[] {
  return byKind(objects, 'Cluster').map((cluster) => ({
    owner: `Cluster/${cluster.metadata.name}`,
    labels: { 'cnpg.io/cluster': cluster.metadata.name, 'cnpg.io/podRole': 'instance' },
    spec: { containers: [] },
  }));
}

export function containersOf(spec: PodSpec): Array<{ container: Container; init: boolean }> {
  return [
    ...(spec.initContainers ?? []).map((container) => ({ container, init: true })),
    ...spec.containers.map((container) => ({ container, init: false })),
  ];
}

/** Whether a label selector selects these labels (matchLabels and the four matchExpressions operators). */
export function selects(selector: Selector, labels: Labels): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    if (operator === 'In') return values.includes(labels[key] ?? '\0');
    if (operator === 'NotIn') return !values.includes(labels[key] ?? '\0');
    if (operator === 'Exists') return key in labels;
    return !(key in labels);
  });
  return byLabels && byExpressions;
}

/**
 * Fields a JSON schema check lets through: Kubernetes' schemas allow unknown properties (the API server drops
 * them), so a misspelled `readinesProbe` would validate and do nothing. The TypeScript declarations of the same
 * models reject it: each object becomes an object literal typed by its model's interface, and the compiler's
 * excess-property check names every field the model does not have. Returns one line per finding.
 */
export function unknownFields(
  objects: Array<{ object: unknown; type: string; module: string; label: string }>,
): string[] {
  const file = path.join(ROOT, 'test/deploy/__k8s_fields__.ts');
  const modules = [...new Set(objects.map((o) => `import type { ${o.type} } from '${o.module}';`))];
  const lines = [...modules];
  const labelAt: string[] = [];
  objects.forEach(({ object, type, label }, i) => {
    const text = `export const o${i}: ${type} = ${JSON.stringify(object, null, 1)};`;
    for (const _ of text.split('\n')) labelAt.push(label);
    lines.push(text);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      const where = labelAt[line - modules.length] ?? 'imports';
      return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ').slice(0, 240)}`;
    });
}
