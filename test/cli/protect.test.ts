import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isHeartbeat } from '../../src/lib/liveness.ts';
import { CLI } from '../support/processes.ts';
import { tempDir } from '../support/temp.ts';

describe('trendgen protect under the supervisor', () => {
  const temp = tempDir('protect-heartbeat');
  afterAll(() => temp.remove());

  // `up` kills a child whose heartbeats stop (children.ts): protect sent none, so every 90 s it was killed
  // and restarted, and the WAL stream stopped each time.
  it('sends heartbeats over its IPC channel', async () => {
    const child = spawn(process.execPath, [CLI, 'protect'], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: {
        ...process.env,
        DATA_DIR: path.join(temp.dir, 'data'),
        BACKUP_DIR: path.join(temp.dir, 'backups'),
        PROMPTS_DIR: path.join(temp.dir, 'prompts'),
        // Nothing to stream: the process idles, and must still say it is alive.
        BACKUP_CONTINUOUS: 'off',
        LOG_LEVEL: 'fatal',
        TRENDGEN_SUPERVISED: '1',
      },
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    try {
      const beat = await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no heartbeat within 60 s; stderr: ${stderr}`)),
          60_000,
        );
        child.on('message', (message) => {
          if (!isHeartbeat(message)) return;
          clearTimeout(timer);
          resolve(message);
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`protect exited with ${code} before a heartbeat; stderr: ${stderr}`));
        });
      });
      expect(beat).toMatchObject({ type: 'trendgen-heartbeat', ok: true });
    } finally {
      child.kill('SIGKILL');
    }
  }, 90_000);
});
