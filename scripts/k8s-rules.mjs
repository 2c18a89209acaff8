// Writes deploy/k8s/base/monitoring/trendgen-rules.yaml: deploy/prometheus/alerts.yml's groups as a
// PrometheusRule, so Compose's Prometheus and prometheus-operator load the same alerts.
// test/deploy/k8s.test.ts fails when the two differ. Run: node scripts/k8s-rules.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const alerts = parse(readFileSync(path.join(root, 'deploy/prometheus/alerts.yml'), 'utf8'));
const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'trendgen' },
  spec: { groups: alerts.groups },
};
const header = [
  '# deploy/prometheus/alerts.yml as a PrometheusRule, written by scripts/k8s-rules.mjs: edit alerts.yml and run it',
  '# again (test/deploy/k8s.test.ts fails when the two differ).',
  '',
].join('\n');
writeFileSync(
  path.join(root, 'deploy/k8s/base/monitoring/trendgen-rules.yaml'),
  header + stringify(rule, { lineWidth: 0 }),
);
