import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { tempDir } from '../support/temp.ts';

/** A port some other program holds for the length of the test. */
async function takenPort(): Promise<{ port: number; release(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('trendgen up on ports another program holds', () => {
  const temp = tempDir('up-ports');
  afterAll(() => temp.remove());

  for (const variable of ['PORT', 'POSTGRES_PORT', 'REDIS_PORT'] as const) {
    it(`exits non-zero within seconds, naming ${variable}, instead of restarting a server forever`, async () => {
      const taken = await takenPort();
      try {
        const started = Date.now();
        const run = runCli(['up'], {
          DATA_DIR: path.join(temp.dir, variable, 'data'),
          PROMPTS_DIR: path.join(temp.dir, variable, 'prompts'),
          HOST: '127.0.0.1',
          PORT: variable === 'PORT' ? String(taken.port) : '0',
          LOG_LEVEL: 'fatal',
          BACKUP_SCHEDULE: 'off',
          DRILL_SCHEDULE: 'off',
          [variable]: String(taken.port),
        });
        const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
        const result = await run;
        clearTimeout(timer);
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toContain(
          `trendgen: ${variable} ${taken.port} on 127.0.0.1 is already in use by another program: stop that program, or set ${variable} to a free port.`,
        );
        expect(Date.now() - started).toBeLessThan(30_000);
      } finally {
        await taken.release();
      }
    }, 60_000);
  }
});
