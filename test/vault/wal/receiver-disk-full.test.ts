import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/db/connection.ts';
import { sleep } from '../../../src/lib/process.ts';
import { WalReceiver } from '../../../src/vault/wal/receiver.ts';
import { bareMachine } from '../../support/bare-machine.ts';
import { Tmpfs, tmpfsUnavailable } from '../../support/tmpfs.ts';

const MiB = 1024 * 1024;
const cannotMount = tmpfsUnavailable('receiver-disk-full');

async function until(what: string, test: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// pg_receivewal writes each new segment's full 16 MB in zeros first; on a full disk that fails half-way and
// the short file stays, which made every later run refuse to start even after space came back.
describe.skipIf(Boolean(cannotMount))('the WAL receiver on a full backup disk', { timeout: 180_000 }, () => {
  const machine = bareMachine('receiver-disk-full');
  const backups = new Tmpfs(path.join(machine.temp.dir, 'backups'));
  const pg = machine.postgres();
  let receiver: WalReceiver | undefined;
  afterAll(async () => {
    await receiver?.stop();
    await pg.stop().catch(() => {});
    backups.unmount();
    machine.temp.remove();
  });

  it('says the disk is full in one sentence naming BACKUP_DIR, and streams again once space is freed', async () => {
    const running = await pg.start();
    // Less room than one segment: the receiver cannot create its first file.
    backups.mount(6 * MiB);
    const walDir = path.join(backups.dir, 'incoming', 'wal');
    const logged: string[] = [];
    receiver = new WalReceiver({
      databaseUrl: running.url,
      walDir,
      backupDir: backups.dir,
      log: (message) => logged.push(message),
    });
    receiver.start();
    await until('a failure', () => receiver!.lastError !== undefined);
    expect(receiver.lastError).toBe(
      `The disk under ${backups.dir} is full, so the WAL receiver cannot write: free space or move BACKUP_DIR elsewhere.`,
    );

    backups.leave(64 * MiB);
    await until('the receiver streaming with no error', () => receiver!.lastError === undefined, 60_000);
    // The segment in progress, at its full size: WAL goes in again.
    const url = new URL(running.url);
    url.pathname = '/postgres';
    const sql = openDatabase(url.toString(), { max: 1 });
    await sql`create table t as select g from generate_series(1, 1000) g`;
    await sql.end({ timeout: 1 });
    const partial = readdirSync(walDir).find((name) => name.endsWith('.partial'));
    expect(partial, `files: ${readdirSync(walDir).join(', ')}; log: ${logged.join(' | ')}`).toBeDefined();
    expect(statSync(path.join(walDir, partial!)).size).toBe(16 * MiB);
    expect(receiver.state).toBe('streaming');
  });
});
