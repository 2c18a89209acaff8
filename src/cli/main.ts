import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/config.ts';
import { DatabaseTlsError } from '../db/tls.ts';
import { MissingBinaryError } from '../embedded/binaries.ts';
import { scrub } from '../ops/logger.ts';
import { backupCommand } from './backup.ts';
import { checkCommand } from './check.ts';
import { classicCommands } from './classic.ts';
import { configCommand } from './config.ts';
import { UsageError } from './context.ts';
import { doctorCommand } from './doctor.ts';
import { drillCommand } from './drill.ts';
import { forgetCommand } from './forget.ts';
import { gcCommand } from './gc.ts';
import { migrateCommand } from './migrate.ts';
import { objectStreamCommand } from './object-stream.ts';
import { promptsCommand } from './prompts.ts';
import { protectCommand } from './protect.ts';
import { restoreCommand } from './restore.ts';
import { schedulerCommand } from './scheduler.ts';
import { serveCommand, upCommand } from './serve.ts';
import { snapshotsCommand } from './snapshots.ts';
import { statusCommand } from './status.ts';
import { workerCommand } from './worker.ts';

export function buildProgram(): Command {
  const program = new Command('trendgen')
    .description('AI trend-image generator backend whose data and prompts are never lost.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.addCommand(upCommand());
  program.addCommand(serveCommand());
  program.addCommand(workerCommand());
  program.addCommand(schedulerCommand());
  program.addCommand(protectCommand());
  program.addCommand(migrateCommand());
  program.addCommand(configCommand());
  program.addCommand(promptsCommand());
  program.addCommand(doctorCommand());
  program.addCommand(objectStreamCommand());
  for (const command of [
    backupCommand(),
    statusCommand(),
    snapshotsCommand(),
    restoreCommand(),
    checkCommand(),
    forgetCommand(),
    gcCommand(),
    drillCommand(),
    ...classicCommands(),
  ])
    program.addCommand(command);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Exit status: 0 success, 1 failure, 2 wrong usage. Failures print one plain sentence, no stack. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`trendgen: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    const known =
      error instanceof ConfigError ||
      error instanceof MissingBinaryError ||
      error instanceof DatabaseTlsError;
    process.stderr.write(`trendgen: ${scrub((error as Error).message ?? String(error))}\n`);
    if (!known && process.env.TRENDGEN_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = 1;
  }
}
