/**
 * Writes docs/reliability.md from the raw results of one or more fault runs, for an on-demand run split
 * across processes or machines: `npx tsx test/faults/harness/write-report.ts <out.md> <results.jsonl>…`
 * (each run keeps its results in fault-results.jsonl beside its test services while it runs). Rows of
 * scenarios not in these results are kept from <out.md> as it was.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseReport, reliabilityDocument } from './reliability-doc.ts';
import { readResults } from './report.ts';

const [out, ...inputs] = process.argv.slice(2);
if (!out || inputs.length === 0) {
  process.stderr.write('usage: write-report.ts <out.md> <results.jsonl>...\n');
  process.exit(2);
}
const results = inputs.flatMap((file) => readResults(file));
const runs = Math.min(
  ...[...new Set(results.map((r) => r.scenario))].map((s) => results.filter((r) => r.scenario === s).length),
);
// Scenarios this run left out keep their rows from the file as it was.
const earlier = existsSync(out) ? parseReport(readFileSync(out, 'utf8')) : [];
writeFileSync(
  out,
  reliabilityDocument(results, { date: new Date().toISOString().slice(0, 10), runs }, earlier),
);
process.stdout.write(
  `${results.length} runs of ${new Set(results.map((r) => r.scenario)).size} scenarios written to ${out}\n`,
);
