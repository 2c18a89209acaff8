import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/config.ts';
import { DEFAULT_CHECK_TIMEOUT_MS, formatReport, runDoctor } from '../ops/doctor/index.ts';
import { printJson } from './context.ts';

const positiveSeconds = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
};

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'Check everything that keeps the data safe (PostgreSQL and Redis durability, backup freshness per target, restore drills, disks, offsite copy and its encryption, prompts, object store) and report OK, WARN or FAIL for each. Exit status 1 when any check fails; WARNs alone exit 0. Starts nothing: services must be running.',
    )
    .option('--json', 'one JSON document on stdout: { ok, checks: [{ id, status, message, hint? }] }')
    .option(
      '--timeout <seconds>',
      `seconds each check may take (default ${DEFAULT_CHECK_TIMEOUT_MS / 1000})`,
      positiveSeconds,
    )
    .action(async (options: { json?: boolean; timeout?: number }) => {
      const config = loadConfig();
      const report = await runDoctor(config, {
        ...(options.timeout ? { timeoutMs: Math.round(options.timeout * 1000) } : {}),
      });
      if (options.json) printJson(report);
      else process.stdout.write(formatReport(report));
      // Not an exception: the report is the output, and main would add a second, vaguer sentence.
      if (!report.ok) process.exitCode = 1;
    });
}
