import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createBlobStore } from '../blobstore/index.ts';
import type { Config } from '../config/config.ts';
import { openDatabase } from '../db/connection.ts';
import { migrate } from '../db/migrate.ts';
import { connectServices, embeddedPostgres } from '../embedded/connect.ts';
import { runAsFor } from '../embedded/run-as.ts';
import { deleteUserData } from '../generation/user-data.ts';
import { ensureSecretFile, fsyncDir } from '../lib/files.ts';
import { holdOpen } from '../lib/leftovers.ts';
import { markPurged, recordRestore } from '../objects/purge.ts';
import { liveObjects } from '../objects/queries.ts';
import { writePromptsFromHistory } from '../prompts/index.ts';
import { closeRunsAfterRestore } from './catalog.ts';
import { readLedger } from './ledger.ts';
import { streamsWal } from './protected-by.ts';
import type { Repository, Snapshot } from './repository/index.ts';
import { RestoreRefusedError, runRestore } from './restore.ts';
import { refuseWhileServiceRuns } from './restore-guards.ts';
import { restoreObjects } from './sources/objects-restore.ts';
import { readObjectsWatermark, restoreStreamedObjects, streamedObjects } from './stream/objects-status.ts';
import { loadSnapshots, openFirstTarget } from './targets.ts';
import { PointInTimeError, planPointInTime, recoverableWindow } from './wal/pitr-plan.ts';
import { type PhysicalRestoreResult, restorePhysical } from './wal/pitr-restore.ts';
import { receiverDir } from './wal/protect.ts';
import { WAL_RECEIVER_NAME } from './wal/receiver.ts';

export interface MomentRequest {
  /** The moment to restore; undefined restores the newest one the vault holds. */
  time: Date | undefined;
  /** Replace the embedded PostgreSQL's data directory (moved aside, never deleted). */
  inPlace?: boolean;
  target?: string;
  onProgress?: (phase: string, detail?: string) => void;
}

export interface MomentReport {
  postgres: PhysicalRestoreResult;
  /** Said when the restore went back to an older timeline than the newest one recorded. */
  notice: string | undefined;
  /** Where the data directory that was replaced now is. */
  movedAside: string | undefined;
  deletionsReapplied: number;
  /**
   * `unfinished`: with BACKUP_SYNC=on, uploads killed after their row committed and before their object reached
   * the local target (never acknowledged): their rows are marked purged.
   */
  objects: { referenced: number; restored: number; missing: string[]; unfinished: string[] };
  /** The prompts folder written from the restored history (the database is the recovery point). */
  prompts: { written: number; removed: number };
  /** Redis's keys, from the newest snapshot. */
  redis: { snapshot: string; keys: unknown } | undefined;
  durationMs: number;
}

/**
 * Whether `restore latest` means the newest moment rather than the newest snapshot: continuous protection is
 * on, the database is the embedded one, and the vault holds a base backup with its WAL.
 */
export async function momentRestoreApplies(config: Config, target?: string): Promise<boolean> {
  if (!streamsWal(config) || config.databaseUrl) return false;
  try {
    const { repo } = await openFirstTarget(config, target ? [target] : undefined);
    return (await recoverableWindow(repo)) !== undefined;
  } catch {
    return false;
  }
}

/** The embedded data directory must be free, or replaced only with --in-place --yes and never while it runs (I9). */
function clearDestination(config: Config, inPlace: boolean): string | undefined {
  const pg = embeddedPostgres(config);
  if (!existsSync(pg.dataDir) || readdirSync(pg.dataDir).length === 0) return undefined;
  if (pg.findRunning()) {
    throw new RestoreRefusedError(
      `PostgreSQL is running on ${pg.dataDir}: stop trendgen up first, then restore with --in-place --yes.`,
    );
  }
  if (!inPlace) {
    throw new RestoreRefusedError(
      `Restoring would replace the database in ${pg.dataDir}: add --in-place --yes (the current one is moved aside, not deleted).`,
    );
  }
  const aside = `${pg.dataDir}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(pg.dataDir, aside);
  return aside;
}

/**
 * Point-in-time restore onto this machine's embedded PostgreSQL (I11): the base backup and WAL replayed to the
 * moment, into a folder beside the data directory that takes its place only once replay finished; then the
 * database is settled like any restore: deletions recorded after the moment re-applied (I3), and every object
 * the restored rows refer to put back from the vault, with any that is missing named (I8).
 */
export async function restoreToMoment(config: Config, request: MomentRequest): Promise<MomentReport> {
  const started = Date.now();
  if (config.databaseUrl) {
    throw new RestoreRefusedError(
      'Point-in-time restore writes a PostgreSQL data directory, which needs the embedded server: unset DATABASE_URL (for a managed or Kubernetes PostgreSQL use its own point-in-time recovery).',
    );
  }
  const progress = request.onProgress ?? (() => {});
  await refuseWhileServiceRuns(config, {
    parts: ['postgres', 'redis', 'prompts', 'objects'],
    databaseUrl: '',
  });
  const { target, repo } = await openFirstTarget(config, request.target ? [request.target] : undefined);
  if (
    !request.inPlace &&
    existsSync(config.promptsDir) &&
    readdirSync(config.promptsDir).some((n) => !n.startsWith('.'))
  ) {
    throw new RestoreRefusedError(
      `Restoring would replace the prompt files in ${config.promptsDir}: add --in-place --yes, or move them away first.`,
    );
  }
  const plan = await planMoment(config, repo, request.time);
  const pg = embeddedPostgres(config);
  const staging = `${pg.dataDir}.restoring`;
  const scratch = path.join(config.dataDir, 'tmp', 'restore-to-moment');
  // A killed earlier attempt leaves only these two folders, never a half-replayed data directory in place.
  rmSync(staging, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const movedAside = clearDestination(config, Boolean(request.inPlace));
  const release = holdOpen(scratch);
  let postgres: PhysicalRestoreResult;
  try {
    postgres = await restorePhysical(repo, plan, {
      dataDir: staging,
      scratch,
      superuser: config.postgres.user,
      password: ensureSecretFile(pg.passwordFile),
      runAs: runAsFor('postgres', config.dataDir),
      receivedWalDir: receiverDir(config),
      ...(streamsWal(config) ? { streamSlot: WAL_RECEIVER_NAME } : {}),
      progress,
    });
  } finally {
    release();
    rmSync(scratch, { recursive: true, force: true });
  }
  renameSync(staging, pg.dataDir);
  await fsyncDir(path.dirname(pg.dataDir));
  // The receiver's folder belongs to the timeline just left behind: protect starts a new stream after it.
  if (existsSync(receiverDir(config))) {
    renameSync(receiverDir(config), `${receiverDir(config)}.before-restore-${Date.now()}`);
  }
  const services = await connectServices(config, { postgres: true, redis: false });
  // Local commits: no WAL receiver runs during a restore, and BACKUP_SYNC would make every commit wait for one.
  const sql = openDatabase(services.databaseUrl, { max: 2, writable: true, localCommit: true });
  try {
    await migrate(sql);
    // Blobs of the timeline just replaced are no orphans while a restore could go back to it (I3).
    await recordRestore(sql);
    progress('settle');
    // Every deletion since the base backup began is applied again (it is idempotent): the ledger's times come
    // from the service's clock, the recovered moment from the database's, and neither may decide alone (I3).
    const { records } = await readLedger(repo, plan.base.startedAt);
    const users = [...new Set(records.map((r) => r.userId))];
    for (const user of users) await deleteUserData(sql, user);
    progress('objects');
    const objects = await restoreReferencedObjects(config, repo, sql);
    progress('prompts');
    const prompts = await writePromptsFromHistory(sql, config.promptsDir, {
      maxBytes: config.limits.maxPromptBytes,
    });
    mkdirSync(config.promptsDir, { recursive: true });
    await fsyncDir(config.promptsDir);
    const [newest] = await loadSnapshots(repo);
    // Runs the restored catalog shows unfinished were cut off by the restore; the newest snapshot's did end.
    if (newest) await closeRunsAfterRestore(sql, newest, target.name);
    const redis = newest ? await restoreRedisOf(config, repo, newest, Boolean(request.inPlace)) : undefined;
    return {
      postgres,
      notice: plan.notice,
      movedAside,
      deletionsReapplied: users.length,
      objects,
      prompts: { written: prompts.written.length, removed: prompts.removed.length },
      redis,
      durationMs: Date.now() - started,
    };
  } finally {
    await sql.end({ timeout: 5 });
    await services.release();
  }
}

/**
 * Redis holds only what PostgreSQL can rebuild (I4): the newest snapshot's keys are put back so sessions and
 * idempotency keys survive, and the reconciler re-queues whatever the restored database still has open.
 */
async function restoreRedisOf(
  config: Config,
  repo: Repository,
  snapshot: Snapshot,
  inPlace: boolean,
): Promise<{ snapshot: string; keys: unknown } | undefined> {
  if (!snapshot.trees.redis) return undefined;
  const services = await connectServices(config, { postgres: false, redis: true });
  try {
    const report = await runRestore(repo, snapshot, {
      // Secrets (the admin token up generated) come back with Redis: neither is in the database.
      parts: snapshot.trees.secrets ? ['redis', 'secrets'] : ['redis'],
      secretsDir: path.join(config.dataDir, 'secrets'),
      databaseUrl: '',
      redisUrl: services.redisUrl,
      promptsDir: config.promptsDir,
      objects: createBlobStore(config.storageUrl, config.s3),
      inPlace,
      scratchDir: path.join(config.dataDir, 'tmp', 'restore-to-moment-redis'),
    });
    return { snapshot: snapshot.id, keys: report.parts.redis };
  } finally {
    await services.release();
  }
}

const OBJECTS_BEHIND_NOTICE_SECONDS = 5;

/**
 * The newest moment is where every source agrees (I8): PostgreSQL's WAL is replayed only up to the objects'
 * watermark, so no restored row refers to an object the vault lacks. In synchronous mode every acknowledged
 * upload is already in the local target, so the WAL is replayed to its end.
 */
export async function planMoment(config: Config, repo: Repository, time: Date | undefined) {
  if (time) return await planPointInTime(repo, time);
  const newest = await planPointInTime(repo, undefined);
  const watermark = config.backup.sync ? undefined : await readObjectsWatermark(repo);
  if (!watermark) return newest;
  // The WAL names the objects each commit made live: replay past the watermark up to the first commit that made
  // live one the vault lacks (writes without objects come back to the WAL's end). Only from a base backup that
  // ends before the watermark: what the base backup holds cannot be taken back.
  const held = async () => new Set<string>((await streamedObjects(repo)).keys());
  if (newest.base.objectMarkers && watermark.getTime() >= Date.parse(newest.base.time)) {
    return { ...newest, objectBarrier: { watermark, held: await held() } };
  }
  // The newest base backup began after the watermark (taken while the objects' state record trailed it): the
  // barrier starts from the newest base backup before the watermark on the same timeline, so writes without
  // objects still come back to the WAL's end; only a longer replay is the price.
  const older = await planBeforeWatermark(repo, watermark, newest.timeline);
  if (older?.base.objectMarkers) {
    return {
      ...older,
      target: undefined,
      notice: newest.notice,
      objectBarrier: { watermark, held: await held() },
    };
  }
  // The vault's WAL ends before the watermark, but the receiver's own WAL on the backup disk, replayed too, may
  // go past it: the replay still stops at the last commit at or before the watermark.
  if (!newest.coversUntil || watermark >= newest.coversUntil) return { ...newest, target: watermark };
  // Stopped at the watermark: the newest base backup at or before it, on the timeline live then.
  const plan = await planPointInTime(repo, watermark, { clamp: true });
  const behind = (newest.coversUntil.getTime() - watermark.getTime()) / 1000;
  const stopped = `the objects reached the backups only up to ${watermark.toISOString()}, ${behind.toFixed(1)} s before the end of the WAL (${newest.coversUntil.toISOString()}): the database is restored to that moment, so that no row refers to an object the backups lack`;
  // Objects trail the WAL by a second or so as a rule: only a watermark left well behind is worth saying.
  const notices = [
    plan.notice ?? newest.notice,
    behind >= OBJECTS_BEHIND_NOTICE_SECONDS ? stopped : undefined,
  ];
  const notice = notices.filter(Boolean).join('; ');
  return { ...plan, notice: notice || undefined };
}

async function planBeforeWatermark(repo: Repository, watermark: Date, timeline: number) {
  try {
    const plan = await planPointInTime(repo, watermark, { clamp: true });
    return plan.timeline === timeline ? plan : undefined;
  } catch (error) {
    if (error instanceof PointInTimeError) return undefined;
    throw error;
  }
}

/** Every object the restored rows refer to, put back from the stream, else from the newest snapshot holding it (I2, I8). */
async function restoreReferencedObjects(
  config: Config,
  repo: Repository,
  sql: ReturnType<typeof openDatabase>,
): Promise<MomentReport['objects']> {
  const store = createBlobStore(config.storageUrl, config.s3);
  const referenced = await liveObjects(sql);
  const missing = async () => {
    const out: string[] = [];
    for (const object of referenced) if (!(await store.head(object.key))) out.push(object.key);
    return out;
  };
  let lacking = await missing();
  let restored = 0;
  if (lacking.length) {
    const streamed = await restoreStreamedObjects(repo, lacking, store);
    restored += streamed.written;
    lacking = await missing();
  }
  for (const snapshot of await loadSnapshots(repo)) {
    if (lacking.length === 0) break;
    if (!snapshot.trees.objects) continue;
    restored += (await restoreObjects(repo, snapshot.trees.objects, store, { only: new Set(lacking) }))
      .written;
    lacking = await missing();
  }
  // Synchronous mode replays the WAL to its end (every acknowledged commit): a row whose object reached no
  // backup is an upload that was never answered, not a loss; marked purged, no live row refers to it (I8).
  if (config.backup.sync && lacking.length) {
    await markPurged(sql, lacking);
    return { referenced: referenced.length, restored, missing: [], unfinished: lacking };
  }
  return { referenced: referenced.length, restored, missing: lacking, unfinished: [] };
}
