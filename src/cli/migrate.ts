import { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices } from '../embedded/connect.ts';
import { printJson } from './context.ts';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description(
      'Apply database migrations. Safe to run from several processes at once: one applies, the others wait for it.',
    )
    .option('--json', 'one JSON object on stdout')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      const services = await connectServices(config, { postgres: true, redis: false });
      const sql = openDatabase(services.databaseUrl, { max: 1 });
      try {
        const result = await migrate(sql, {
          onWait: () => process.stderr.write('Another process is migrating; waiting for it to finish…\n'),
        });
        const applied = result.applied.map((m) => `${String(m.version).padStart(4, '0')}_${m.name}`);
        if (options.json) printJson({ applied, current: result.current, waitedMs: result.waitedMs });
        else if (applied.length)
          process.stdout.write(`Applied ${applied.join(', ')}; schema is at version ${result.current}.\n`);
        else process.stdout.write(`Nothing to apply; schema is at version ${result.current}.\n`);
      } finally {
        await sql.end({ timeout: 5 });
        await services.release();
      }
    });
}
