import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { describeConfig } from '../config/describe.ts';
import { printJson } from './context.ts';

export function configCommand(): Command {
  return new Command('config')
    .description('Print the effective configuration (environment, .env and defaults) with secrets masked.')
    .option('--json', 'one JSON object on stdout')
    .action((options: { json?: boolean }) => {
      const described = describeConfig(loadConfig());
      if (options.json) return printJson(described);
      const width = Math.max(...Object.keys(described).map((key) => key.length));
      for (const [key, value] of Object.entries(described))
        process.stdout.write(`${key.padEnd(width)}  ${value}\n`);
    });
}
