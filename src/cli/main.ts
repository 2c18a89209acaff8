import { Command, CommanderError } from 'commander';
import { COMMANDS, type CommandEntry } from './commands.ts';
import { UsageError } from './usage-error.ts';

/**
 * The program: every command listed by its summary, and the `loaded` ones (the command being run) with
 * their whole definition.
 */
export function buildProgram(loaded: Command[] = []): Command {
  const program = new Command('trendgen')
    .description('AI trend-image generator backend whose data and prompts are never lost.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const entry of COMMANDS) {
    const command = loaded.find((c) => c.name() === entry.name) ?? new Command(entry.name);
    program.addCommand(command.summary(entry.summary));
  }
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** The command the arguments run, or ask help about: `trendgen backup …`, `trendgen help backup`. */
function invokedCommand(args: string[]): CommandEntry | undefined {
  // The program's own options (--help, --version) take no values: the first word is the command.
  const [first, second] = args.filter((arg) => !arg.startsWith('-'));
  const name = first === 'help' ? second : first;
  return COMMANDS.find((entry) => entry.name === name);
}

/** Exit status: 0 success, 1 failure, 2 wrong usage. Failures print one plain sentence, no stack. */
export async function main(argv: string[]): Promise<void> {
  // A reader that stops early (`trendgen snapshots | head`) ends the output, not with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
  try {
    const invoked = invokedCommand(argv.slice(2));
    await buildProgram(invoked ? [await invoked.load()] : []).parseAsync(argv);
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
    // Loaded only on failure: what it needs to classify and scrub the error is not needed to start.
    const { reportFailure } = await import('./failure.ts');
    reportFailure(error as Error);
    process.exitCode = 1;
  }
}
