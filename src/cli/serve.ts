import { rmSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { adminTokenPath, loadConfig } from '../config/config.ts';
import { nameConnections } from '../db/connection.ts';
import { writeFileAtomicSync } from '../lib/files.ts';
import { startLiveness } from '../lib/liveness.ts';
import { createLogger } from '../ops/logger.ts';
import { runSupervisor } from '../supervisor/supervisor.ts';
import { refuseMarkedPlaces, survivePostgresSocketRace, untilStopped } from './lifecycle.ts';

function apiInfoFile(dataDir: string): string {
  return path.join(dataDir, 'run', 'api.json');
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('Run the HTTP API (and the prompt folder watcher) in this process.')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'api');
      survivePostgresSocketRace((message) => logger.warn(message));
      nameConnections('serve');
      await refuseMarkedPlaces(config);
      const liveness = startLiveness(config.livenessTimeoutSeconds * 1000, config.livenessFile);
      // Loaded here, not at the top: Fastify, its plugins and sharp take a while to load, and other commands never need them.
      const { startApi } = await import('../api/runtime.ts');
      const api = await startApi(config, logger, liveness);
      const infoFile = apiInfoFile(config.dataDir);
      writeFileAtomicSync(infoFile, JSON.stringify({ url: api.url, pid: process.pid }));
      logger.info({ url: api.url, adminTokenFile: api.adminTokenFile }, 'API listening');
      const reason = await untilStopped();
      logger.info({ reason }, 'shutting down');
      await api.close();
      rmSync(infoFile, { force: true });
    });
}

export function upCommand(): Command {
  return new Command('up')
    .description(
      'Run everything on this machine: embedded PostgreSQL and Redis under DATA_DIR (unless DATABASE_URL / REDIS_URL are set) then the API, the generation worker, the scheduler and continuous protection (BACKUP_CONTINUOUS), each restarted if it dies. Ctrl-C stops it all in order.',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'up');
      const code = await runSupervisor(config, {
        children: [['serve'], ['worker'], ['scheduler'], ...(config.backup.continuous ? [['protect']] : [])],
        logger,
        onReady: () => {
          const tokenLine = config.adminToken
            ? 'Admin token: ADMIN_TOKEN from the environment'
            : `Admin token: in ${adminTokenPath(config)}`;
          process.stderr.write(
            [
              '',
              `trendgen is starting: API on http://${config.host}:${config.port} (docs at /api/docs)`,
              `Data:        ${config.dataDir}`,
              `Prompts:     ${config.promptsDir}`,
              `Objects:     ${config.storageUrl}`,
              `Protection:  ${config.backup.continuous ? `continuous (${config.backup.sync ? 'synchronous' : 'asynchronous'}) into ${config.backup.dir}` : `snapshots on ${config.backup.schedule}`}`,
              tokenLine,
              'Stop with Ctrl-C.',
              '',
            ].join('\n'),
          );
        },
      });
      process.exitCode = code;
    });
}
