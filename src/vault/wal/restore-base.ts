import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar';
import type { Repository } from '../repository/index.ts';
import type { PointInTimePlan } from './pitr-plan.ts';
import { readTreeFile } from './tree-file.ts';

/** The base backup's tar, verified chunk by chunk, extracted straight into the new data directory. */
export async function extractBase(repo: Repository, plan: PointInTimePlan, dataDir: string): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`${dataDir} is not empty: a physical restore creates a new data directory.`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const chunks = Readable.from(readTreeFile(repo, plan.base.tree));
  if (!(await extractWithSystemTar(chunks, dataDir))) {
    await pipeline(
      Readable.from(readTreeFile(repo, plan.base.tree)),
      extract({ cwd: dataDir, preserveOwner: false }),
    );
  }
  for (const dir of ['pg_wal', 'pg_wal/archive_status'])
    mkdirSync(path.join(dataDir, dir), { recursive: true });
}

/**
 * Extracts with the system's tar in its own process: the tar's parsing and the file writes then run beside
 * this process's reading, verifying and decompressing of the chunks, on another core. GNU tar refuses
 * members that climb out with `..` and strips a leading `/`; the archive is an authenticated record besides.
 * False when no tar program exists (the caller extracts in-process instead); a tar that fails is an error.
 */
async function extractWithSystemTar(chunks: Readable, dataDir: string): Promise<boolean> {
  const child = spawn('tar', ['-x', '-f', '-', '-C', dataDir, '--no-same-owner'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned) {
    chunks.destroy();
    return false;
  }
  let said = '';
  child.stderr!.on('data', (data: Buffer) => {
    said = `${said}${data.toString()}`.slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const tarFailed = (code: number | null) =>
    new Error(
      `tar could not extract the base backup into ${dataDir} (exit ${code}): ${said.trim().split('\n').slice(-2).join(' ')}`,
    );
  try {
    await pipeline(chunks, child.stdin!);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A tar that stopped reading closed the pipe: its own words say why. A damaged chunk stays that error.
    if (code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE') throw tarFailed(await exited);
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  const code = await exited;
  if (code !== 0) throw tarFailed(code);
  return true;
}
