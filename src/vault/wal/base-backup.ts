import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { findPostgresBinary } from '../../embedded/binaries.ts';
import { type BaseBackupRecord, copyBlobsTo, type Repository, writeBaseRecord } from '../repository/index.ts';
import { withSql } from '../sources/postgres-admin.ts';
import { receiverConnection } from './receiver.ts';
import { storeAsTree, treeFileBlobs } from './tree-file.ts';

export class BaseBackupError extends Error {
  override name = 'BaseBackupError';
}

/**
 * A physical base backup: `pg_basebackup` writes a tar of the data directory to its stdout, which is chunked
 * straight into the repository (no scratch copy). It carries no WAL (`-X none`): the receiver's stream holds
 * the WAL from its start to its end, and a restore replays it from there. The record is written last (I6).
 */
export async function takeBaseBackup(repo: Repository, databaseUrl: string): Promise<BaseBackupRecord> {
  const startedAt = new Date().toISOString();
  // pg_basebackup prints its WAL start and end points only into a directory; bracketing it with the server's
  // own position is safe: replay from an earlier point and to a later one than strictly needed.
  const position = () =>
    withSql(databaseUrl, async (sql) => {
      const [row] = await sql<{ v: string; id: string; lsn: string; tli: number; markers: boolean }[]>`
        select current_setting('server_version_num') as v, pg_current_wal_lsn()::text as lsn,
          (select system_identifier::text from pg_control_system()) as id,
          (select timeline_id from pg_control_checkpoint()) as tli,
          exists (select 1 from pg_trigger where tgname = 'trendgen_object_marker') as markers`;
      return row!;
    });
  const before = await position();
  const { dbname, env, password } = receiverConnection(databaseUrl);
  const child = spawn(
    findPostgresBinary('pg_basebackup'),
    ['-d', dbname, '-D', '-', '-F', 't', '-X', 'none', '-c', 'fast', '--no-manifest'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-16000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(-1));
    child.once('close', (code) => resolve(code));
  });
  let stored: Awaited<ReturnType<typeof storeAsTree>>;
  // Its chunks go into pack files (format 3): the record below is written once they are durable and indexed.
  repo.packBlobs();
  try {
    stored = await storeAsTree(repo, 'base.tar', child.stdout!);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  const code = await exited;
  if (code !== 0) {
    let tail = stderr.trim().split('\n').slice(-3).join(' ');
    if (password) tail = tail.replaceAll(password, '***');
    throw new BaseBackupError(`pg_basebackup failed (exit code ${code}): ${tail}`);
  }
  const after = await position();
  const record: BaseBackupRecord = {
    id: randomBytes(8).toString('hex'),
    time: new Date().toISOString(),
    startedAt,
    timeline: before.tli,
    startLsn: before.lsn,
    endLsn: after.lsn,
    tree: stored.tree,
    size: stored.size,
    serverVersionNum: Number(before.v),
    systemIdentifier: before.id,
    ...(before.markers ? { objectMarkers: true } : {}),
  };
  await writeBaseRecord(repo, record);
  return record;
}

/** Copies a base backup to another target: its blobs as stored bytes, then its record. */
export async function copyBaseBackup(
  from: Repository,
  to: Repository,
  record: BaseBackupRecord,
): Promise<void> {
  to.packBlobs();
  await copyBlobsTo(from, to, await treeFileBlobs(from, record.tree));
  await writeBaseRecord(to, record);
}
