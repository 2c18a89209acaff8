import path from 'node:path';
import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { copyToTarget } from '../vault/backup.ts';
import { exportClassic, importClassic } from '../vault/classic/index.ts';
import { resolveSnapshot } from '../vault/restore.ts';
import { openFirstTarget, openRepository, resolveTargets } from '../vault/targets.ts';
import { printJson } from './context.ts';
import { collect } from './options.ts';

/** The classic `trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz`, both ways: nothing is locked in. */
export function exportCommand(): Command {
  return new Command('export')
    .description(
      'Write a snapshot as a classic trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz (db.sql.gz + data.tar.gz) that the classic manual restore (tar, gunzip | psql, tar) loads.',
    )
    .argument('<snapshot>', 'snapshot id, prefix, or latest')
    .option('--out <path>', 'archive file, or a folder to write it into (default: BACKUP_DIR/exports/)')
    .option('--target <name>', 'read from this target: local, s3 or a BACKUP_OFFSITE_TARGETS name')
    .option('--json', 'one JSON document on stdout')
    .action(async (ref: string, options: { out?: string; target?: string; json?: boolean }) => {
      const config = loadConfig();
      const { repo } = await openFirstTarget(config, options.target ? [options.target] : undefined);
      const snapshot = await resolveSnapshot(repo, ref);
      // Not the working directory: an archive of every user's data must not land wherever the shell happens to be.
      const out = options.out ?? `${path.join(config.backup.dir, 'exports')}${path.sep}`;
      const result = await exportClassic(repo, snapshot.id, out);
      if (options.json) printJson(result);
      else process.stdout.write(`${result.file}\n`);
    });
}

export function importCommand(): Command {
  return new Command('import')
    .description(
      'Bring a classic trend_generator_backup_*.tar.gz into the repository as a snapshot tagged "imported" (unpacked safely: no paths outside, no links, no devices), then copy it to every other target.',
    )
    .argument('<file>', 'the classic archive')
    .option('--tag <tag>', 'extra tag (repeatable)', collect)
    .option('--json', 'one JSON document on stdout')
    .action(async (file: string, options: { tag?: string[]; json?: boolean }) => {
      const config = loadConfig();
      const [primary, ...others] = resolveTargets(config);
      const repo = await openRepository(primary!, config, { create: true });
      const lock = await repo.lock({ exclusive: false });
      let id: string;
      try {
        id = await importClassic(repo, file, { ...(options.tag ? { tags: options.tag } : {}) });
      } finally {
        await lock.release();
      }
      const targets = [
        { name: primary!.name, ok: true },
        ...(await Promise.all(others.map((t) => copyToTarget(t, config, repo)))),
      ];
      if (options.json) printJson({ snapshotId: id, targets });
      else process.stdout.write(`${id}\n`);
      if (targets.some((t) => !t.ok)) process.exitCode = 1;
    });
}
