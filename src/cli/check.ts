import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { checkTargets } from '../vault/check-targets.ts';
import type { BlobProblem } from '../vault/repository/index.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';

export function checkCommand(): Command {
  return new Command('check')
    .description(
      'Verify the repository on each target: structure, and with --read-data every blob re-hashed. Names every damaged blob and the files it breaks.',
    )
    .option('--read-data', 're-read and re-hash every blob')
    .option(
      '--repair',
      'move damaged blobs (with their pack, after saving its good blobs), unreadable snapshot records and index files aside into quarantine/ (exclusive lock), so that the next backup stores that content again; rebuild the index of packs no index names',
    )
    .option('--target <name>', 'only this target (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { readData?: boolean; repair?: boolean; target?: string[]; json?: boolean }) => {
      const checks = await checkTargets(loadConfig(), {
        readData: Boolean(options.readData),
        repair: Boolean(options.repair),
        ...(options.target ? { only: options.target } : {}),
      });
      const failed = checks.some((c) => c.error !== undefined || !c.report?.ok);
      if (options.json) {
        printJson({
          ok: !failed,
          targets: checks.map(({ target, report, warning, error }) =>
            error !== undefined
              ? { target, ok: false, error }
              : {
                  target,
                  ...report,
                  unreferencedBlobs: report!.unreferencedBlobs?.length,
                  ...(warning ? { warning } : {}),
                },
          ),
        });
      } else {
        for (const { target, report, warning, error } of checks) {
          if (error !== undefined || !report) {
            process.stdout.write(`${target}: FAIL ${error}\n`);
            continue;
          }
          if (warning) process.stderr.write(`${target}: ${warning}\n`);
          process.stdout.write(
            `${target}: ${report.ok ? 'OK' : 'FAIL'} — format ${report.formatVersion}, ${report.snapshots} snapshots, ${report.trees} trees, ${report.blobs} blobs${report.packs ? ` (${report.packs} packs)` : ''}${options.readData ? ', every blob re-hashed' : ''}\n`,
          );
          const problems: Array<[string, BlobProblem[] | Array<{ id: string; reason: string }>]> = [
            ['damaged', report.damagedSnapshots],
            ['damaged', report.damagedBlobs],
            ['missing', report.missingBlobs],
            [
              'damaged',
              report.damagedRecords.map((key) => ({ id: key, reason: 'the record does not read' })),
            ],
            [
              'damaged',
              report.unreadableIndexes.map(({ id, reason }) => ({
                id: `index/${id}`,
                reason: `${reason}; check --repair rebuilds the index from the packs`,
              })),
            ],
          ];
          for (const [word, list] of problems) {
            for (const problem of list) {
              process.stdout.write(`  ${word} ${problem.id}: ${problem.reason}\n`);
              for (const p of (problem as BlobProblem).paths ?? [])
                process.stdout.write(`    breaks ${p.path} in snapshot ${p.snapshot.slice(0, 12)}\n`);
            }
          }
          if (report.unindexedPacks.length > 0)
            process.stdout.write(
              `  ${report.unindexedPacks.length} pack(s) named by no index (left by an interrupted backup; prune deletes them)\n`,
            );
          for (const key of report.unreadableStreamRecords)
            process.stdout.write(`  damaged ${key}: the streamed objects' record does not read\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
