import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { offsiteTargetNames, snapshotsOnTargets } from '../vault/targets.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';
import { UsageError } from './usage-error.ts';

export function snapshotsCommand(): Command {
  return new Command('snapshots')
    .description(
      'List snapshots with their time, tags, contents and the targets that hold them; a record that does not load is listed as DAMAGED (with --json: status "damaged" and the problem).',
    )
    .option('--target <name>', 'only this target (repeatable)', collect)
    .option(
      '--offsite',
      'only the offsite targets (BACKUP_S3_URI, BACKUP_OFFSITE_TARGETS); an error when there is none',
    )
    .option('--json', 'one JSON document on stdout')
    .action(async (options: { target?: string[]; offsite?: boolean; json?: boolean }) => {
      if (options.offsite && options.target)
        throw new UsageError('--offsite already names the targets: give it or --target, not both.');
      const config = loadConfig();
      const only = options.offsite ? offsiteTargetNames(config) : options.target;
      const { snapshots, unreachable } = await snapshotsOnTargets(config, only);
      if (options.json) return printJson({ snapshots, unreachable });
      for (const u of unreachable) process.stderr.write(`trendgen: target ${u.target}: ${u.error}\n`);
      process.stdout.write(
        `${'ID'.padEnd(14)}${'TIME'.padEnd(22)}${'TARGETS'.padEnd(12)}${'OBJECTS'.padEnd(9)}TAGS\n`,
      );
      for (const s of snapshots) {
        if (s.status === 'damaged') {
          process.stdout.write(
            `${s.id.slice(0, 12).padEnd(14)}${'DAMAGED'.padEnd(22)}${s.targets.join(',').padEnd(12)}${'-'.padEnd(9)}${s.problem ?? ''}\n`,
          );
          continue;
        }
        const objects = (s.facts as { objects?: { count?: number } } | undefined)?.objects?.count ?? '-';
        process.stdout.write(
          `${s.id.slice(0, 12).padEnd(14)}${s.time.slice(0, 19).replace('T', ' ').padEnd(22)}${s.targets.join(',').padEnd(12)}${String(objects).padEnd(9)}${s.tags.join(',')}\n`,
        );
      }
      const damaged = snapshots.filter((s) => s.status === 'damaged').length;
      if (damaged)
        process.stderr.write(
          `trendgen: ${damaged} snapshot record(s) are damaged: trendgen check --read-data names them and --repair moves them aside.\n`,
        );
      if (unreachable.length) process.exitCode = 1;
    });
}
