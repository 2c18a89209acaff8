import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../../src/lib/process.ts';
import { bareMachine } from '../../support/bare-machine.ts';
import { runCli } from '../../support/cli.ts';
import { killTree } from '../../support/processes.ts';

interface Status {
  window: { from: string } | null;
  receiver: { state: string };
  sources: Array<{ source: string; error: string | null }>;
}

/**
 * I11: WAL records carry PostgreSQL's segment names, which a new cluster (initdb after a lost disk) starts again
 * from the beginning. Streamed into a vault that holds another system's WAL, its segments would be taken for
 * ones already recorded and never stored: protect refuses, and status and doctor say why in one sentence.
 */
describe('I11 continuous protection refuses a vault that streams another PostgreSQL system', {
  timeout: 300_000,
}, () => {
  const machine = bareMachine('wal-foreign');
  const { dataDir, env } = machine;
  let protect: ReturnType<typeof runCli> | undefined;
  afterAll(async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await machine
      .postgres()
      .stop()
      .catch(() => {});
    machine.temp.remove();
  });

  const status = async (): Promise<Status> =>
    JSON.parse((await runCli(['status', '--json'], env)).stdout || 'null') ?? { window: null, sources: [] };
  const stopProtect = async () => {
    if (protect?.child.pid) killTree(protect.child.pid);
    await protect?.catch(() => undefined);
  };

  it('says which system the vault holds, and doctor fails', async () => {
    await machine.postgres().start();
    protect = runCli(['protect'], env);
    await waitFor('the first window', async () => (await status()).window ?? undefined, 120_000, 500);
    await stopProtect();
    await machine.postgres().stop();

    // The data disk is replaced and a new cluster made on it: another system identifier.
    rmSync(dataDir, { recursive: true, force: true });
    await machine.postgres().start();
    protect = runCli(['protect'], env);
    const said = await waitFor(
      'status to name the other system',
      async () => (await status()).sources.find((s) => s.source === 'postgres')?.error ?? undefined,
      60_000,
      500,
    );
    expect(said).toMatch(
      /^Continuous protection is off: the vault at .+ streams another PostgreSQL system \(\d+, newest base backup \S+\), not this server \(\d+\), .*give this server a new BACKUP_DIR/,
    );
    const doctor = JSON.parse((await runCli(['doctor', '--json'], env)).stdout);
    expect(doctor.checks.find((c: { id: string }) => c.id === 'backup.continuous')).toMatchObject({
      status: 'FAIL',
    });
    await sleep(1000);
    expect(protect.child.exitCode).toBeNull();
  });
});
