/** The answers of the API routes the console reads (see src/api/schemas.ts and the routes). */

export interface Session {
  csrfToken: string;
  expiresAt: string;
}

export type RunStatus = 'running' | 'succeeded' | 'partial' | 'failed' | 'interrupted';

export interface BackupRun {
  id: number;
  snapshotId: string | null;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  tags: string[];
  targets: Array<{ name: string; ok: boolean; error?: string }>;
  bytesAdded: number;
  error?: string;
}

export interface ProtectedSource {
  source: string;
  target: string;
  recoverableUntil: string | null;
  lagSeconds: number | null;
  state: string;
  error: string | null;
}

export interface BackupsView {
  backups: BackupRun[];
  targets: Record<string, { lastSuccessAt: string }>;
  continuous: {
    continuous: boolean;
    mode: 'sync' | 'async' | 'off';
    pitrWindow?: string;
    stall: string | null;
    receiver?: { state: string; error?: string | null };
    sources: ProtectedSource[];
  };
  deletionLedgers: Array<{ target: string; pending: number; lagSeconds: number; lastError?: string }>;
  lastDrill: {
    status: 'passed' | 'failed';
    snapshotId: string | null;
    target: string | null;
    recoverySeconds: number | null;
    finishedAt: string;
    reason?: string;
  } | null;
  schedule: { backup: string; nextBackupAt: string | null; drill: string; nextDrillAt: string | null };
}

export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

export interface DoctorReport {
  takenAt: string | null;
  checks: Array<{ id: string; status: CheckStatus; message: string; hint?: string }>;
}

export interface Timeline {
  from: string;
  to: string;
  snapshots: Array<{
    at: string;
    snapshotId: string | null;
    status: string;
    bytesAdded: number;
    targets: Array<{ name: string; ok: boolean }>;
  }>;
  lag: Array<{ at: string; source: string; target: string; lagSeconds: number | null }>;
}

export interface Drill {
  id: string | number;
  status: 'running' | 'passed' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  snapshotId: string | null;
  target: string | null;
  recoverySeconds: number | null;
  reason: string | null;
  checks: Array<{ name: string; ok: boolean; detail?: string | null }>;
}

export interface PromptSummary {
  name: string;
  version: number | null;
  title: string | null;
  fileState: 'ok' | 'invalid' | 'deleted';
  fileError: { message: string; line?: number; column?: number } | null;
  updatedAt: string;
}

export interface PromptVersionInfo {
  name: string;
  version: number;
  sha256: string;
  origin: string;
  size: number;
  createdAt: string;
}

export interface PromptVersion extends PromptVersionInfo {
  content: string;
}

export interface StoredObject {
  key: string;
  url: string;
}

export interface Trend {
  slug: string;
  title: string;
  emoji: string | null;
  prompt: string;
  status: string;
  example: StoredObject | null;
}

export interface Generation {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  user: string;
  trend: string;
  error?: string;
  createdAt: string;
  outputs: Array<{ variant: number; key: string; url: string; previewKey?: string; previewUrl?: string }>;
}

export interface UserData {
  user: string;
  generations: number;
  objects: number;
  bytes: number;
  recent: Array<{ id: string; status: string; trend?: string; createdAt: string }>;
}

export interface UserDeletion {
  userId: string;
  requestedAt: string;
  generations?: number;
  objects?: number;
}
