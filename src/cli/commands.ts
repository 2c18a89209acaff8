import type { Command } from 'commander';

/**
 * Every command of the CLI, by name, with a one-line summary and how to load its definition. Only the
 * command being run is loaded: a command's module brings the database client, the S3 SDK, the queue or the
 * HTTP server with it, and `trendgen --help` (or a child the supervisor starts) would otherwise load them all.
 */
export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  {
    name: 'up',
    summary:
      'Run everything on this machine (embedded PostgreSQL and Redis, API, worker, scheduler, protection).',
    load: async () => (await import('./serve.ts')).upCommand(),
  },
  {
    name: 'serve',
    summary: 'Run the HTTP API and the prompt folder watcher in this process.',
    load: async () => (await import('./serve.ts')).serveCommand(),
  },
  {
    name: 'worker',
    summary: 'Run generation jobs from the queue.',
    load: async () => (await import('./worker.ts')).workerCommand(),
  },
  {
    name: 'scheduler',
    summary: 'Run periodic work: backups, retention, drills, the reconciler and the collector.',
    load: async () => (await import('./scheduler.ts')).schedulerCommand(),
  },
  {
    name: 'protect',
    summary: 'Run continuous protection: stream the WAL and every new object into every target.',
    load: async () => (await import('./protect.ts')).protectCommand(),
  },
  {
    name: 'migrate',
    summary: 'Apply database migrations (safe from several processes at once).',
    load: async () => (await import('./migrate.ts')).migrateCommand(),
  },
  {
    name: 'config',
    summary: 'Print the effective configuration with secrets masked.',
    load: async () => (await import('./config.ts')).configCommand(),
  },
  {
    name: 'prompts',
    summary: 'Prompt history: every content a prompt file has had; diff and revert.',
    load: async () => (await import('./prompts.ts')).promptsCommand(),
  },
  {
    name: 'doctor',
    summary: 'Check everything that keeps the data safe and report OK, WARN or FAIL.',
    load: async () => (await import('./doctor.ts')).doctorCommand(),
  },
  {
    name: 'object-stream',
    summary: 'Stream every new object to every backup target (or --status).',
    load: async () => (await import('./object-stream.ts')).objectStreamCommand(),
  },
  {
    name: 'backup',
    summary: 'Take one snapshot of PostgreSQL, Redis, prompts and objects on every target.',
    load: async () => (await import('./backup.ts')).backupCommand(),
  },
  {
    name: 'status',
    summary: 'Show continuous protection: recoverable moment and lag per source and target.',
    load: async () => (await import('./status.ts')).statusCommand(),
  },
  {
    name: 'snapshots',
    summary: 'List snapshots and the targets that hold them.',
    load: async () => (await import('./snapshots.ts')).snapshotsCommand(),
  },
  {
    name: 'restore',
    summary: 'Restore a snapshot, the latest moment, or a moment (--to-time).',
    load: async () => (await import('./restore.ts')).restoreCommand(),
  },
  {
    name: 'check',
    summary: 'Verify the repository on each target (--read-data re-hashes every blob).',
    load: async () => (await import('./check.ts')).checkCommand(),
  },
  {
    name: 'forget',
    summary: 'Apply the retention policy; --prune deletes the blobs nothing uses.',
    load: async () => (await import('./forget.ts')).forgetCommand(),
  },
  {
    name: 'gc',
    summary: 'Remove deleted objects no restorable state needs, orphans and crash leftovers.',
    load: async () => (await import('./gc.ts')).gcCommand(),
  },
  {
    name: 'drill',
    summary: 'Prove a snapshot (or a moment) restorable by restoring it into scratch.',
    load: async () => (await import('./drill.ts')).drillCommand(),
  },
  {
    name: 'export',
    summary: 'Write a snapshot as a classic trend_generator_backup_*.tar.gz.',
    load: async () => (await import('./classic.ts')).exportCommand(),
  },
  {
    name: 'import',
    summary: 'Bring a classic trend_generator_backup_*.tar.gz into the repository.',
    load: async () => (await import('./classic.ts')).importCommand(),
  },
];
