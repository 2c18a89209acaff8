import { z } from 'zod';
import { trendInput, trendPatch } from '../trends/trends.ts';

/**
 * The shapes the API answers with, for the OpenAPI document and for Fastify's serializer. Every object keeps
 * `additionalProperties: true`: a response schema also serializes, and a field added to an answer later must
 * reach clients even before it is documented here.
 */
const open = (properties: Record<string, object>, required: string[] = []) => ({
  type: 'object',
  properties,
  ...(required.length ? { required } : {}),
  additionalProperties: true,
});

const str = { type: 'string' };
const int = { type: 'integer' };
const time = { type: 'string', format: 'date-time' };
const nullable = <T extends object>(schema: T) => ({ ...schema, nullable: true });
const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the bytes, hex' };

const fileError = nullable({
  ...open({ message: str, line: int, column: int }),
  description: 'Why the file in PROMPTS_DIR is invalid, and where; null when it is valid',
});

const promptSummary = {
  name: str,
  version: nullable({ ...int, description: 'The last valid version, the one in use' }),
  sha256: nullable(sha256),
  title: nullable(str),
  model: nullable(str),
  tags: { type: 'array', items: str },
  fileState: { type: 'string', enum: ['ok', 'invalid', 'deleted'] },
  fileError,
  updatedAt: time,
};
const document = nullable({
  type: 'object',
  additionalProperties: true,
  description: 'The YAML parsed; null when the content no longer passes the schema',
});

const versionInfo = {
  name: str,
  version: int,
  sha256,
  origin: { type: 'string', enum: ['file', 'api', 'restore', 'import'] },
  size: { ...int, description: 'bytes' },
  createdAt: time,
};

const objectAnswer = {
  key: { ...str, description: '`<kind>/<aa>/<sha256>.<ext>`' },
  sha256,
  size: int,
  contentType: str,
  url: { ...str, description: 'Where GET /api/v1/objects/{key} serves it' },
};

const runStatus = { type: 'string', enum: ['running', 'succeeded', 'partial', 'failed', 'interrupted'] };

export const SHARED_SCHEMAS = [
  {
    $id: 'Error',
    description: 'Every error answer',
    ...open(
      {
        error: open(
          {
            code: { ...str, description: 'machine-readable, e.g. `not_found`' },
            message: { ...str, description: 'one plain sentence saying what happened and what to do' },
            line: { ...int, description: 'invalid_prompt: where the YAML is wrong' },
            column: int,
            currentVersion: { ...int, description: 'version_conflict: the version now in use' },
          },
          ['code', 'message'],
        ),
      },
      ['error'],
    ),
  },
  { $id: 'PromptSummary', ...open(promptSummary, ['name', 'version', 'fileState']) },
  {
    $id: 'Prompt',
    ...open({ ...promptSummary, content: nullable(str), document }, ['name', 'version', 'content']),
  },
  { $id: 'PromptVersionInfo', ...open(versionInfo, ['name', 'version', 'sha256']) },
  {
    $id: 'PromptVersion',
    ...open({ ...versionInfo, content: str, document }, ['name', 'version', 'content']),
  },
  {
    $id: 'SavedPrompt',
    ...open(
      {
        name: str,
        version: int,
        sha256,
        created: { type: 'boolean', description: 'false when the content equals the current version' },
      },
      ['name', 'version', 'sha256'],
    ),
  },
  {
    $id: 'Trend',
    ...open(
      {
        slug: str,
        title: str,
        description: str,
        emoji: nullable(str),
        prompt: { ...str, description: 'the prompt it generates with' },
        params: { type: 'object', additionalProperties: true },
        status: { type: 'string', enum: ['active', 'hidden', 'archived'] },
        position: int,
        example: nullable(open(objectAnswer)),
        createdAt: time,
        updatedAt: time,
      },
      ['slug', 'title', 'prompt', 'status'],
    ),
  },
  { $id: 'TrendInput', ...z.toJSONSchema(trendInput, { io: 'input', target: 'openapi-3.0' }) },
  { $id: 'TrendPatch', ...z.toJSONSchema(trendPatch, { io: 'input', target: 'openapi-3.0' }) },
  { $id: 'StoredObject', ...open(objectAnswer, ['key', 'sha256', 'size']) },
  {
    $id: 'Generation',
    ...open(
      {
        id: { type: 'string', format: 'uuid' },
        status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed'] },
        user: str,
        trend: str,
        prompt: str,
        promptVersion: int,
        variants: int,
        attempts: int,
        outputs: {
          type: 'array',
          items: open({ variant: int, key: str, previewKey: str, url: str, previewUrl: str }),
        },
        error: { ...str, description: 'why it failed (only when it did)' },
        createdAt: time,
        startedAt: nullable(time),
        finishedAt: nullable(time),
      },
      ['id', 'status'],
    ),
  },
  {
    $id: 'UserDeletion',
    ...open({ id: int, userId: str, requestedAt: time, generations: int, objects: int }, [
      'userId',
      'requestedAt',
    ]),
  },
  {
    $id: 'Backups',
    ...open({
      backups: {
        type: 'array',
        items: open({
          id: int,
          snapshotId: nullable(str),
          status: runStatus,
          startedAt: time,
          finishedAt: nullable(time),
          tags: { type: 'array', items: str },
          targets: { type: 'array', items: open({ name: str, ok: { type: 'boolean' } }) },
          bytesAdded: int,
          error: str,
        }),
      },
      targets: {
        type: 'object',
        description: 'Per target: when the last backup reached it',
        additionalProperties: open({ lastSuccessAt: time }),
      },
      continuous: open({
        continuous: { type: 'boolean' },
        mode: { type: 'string', enum: ['sync', 'async', 'off'] },
        pitrWindow: str,
        stall: nullable(str),
        receiver: open({ state: str }),
        sources: {
          type: 'array',
          description: 'Per source and target: the newest recoverable moment and how far it is behind (I11)',
          items: open({
            source: { type: 'string', enum: ['postgres', 'objects'] },
            target: str,
            recoverableUntil: nullable(time),
            lagSeconds: nullable({ type: 'number' }),
            state: str,
            error: nullable(str),
            heldBy: { ...str, description: 'Objects: what holds the recoverable point back, when it lags' },
          }),
        },
        protectedBy: {
          type: 'array',
          description:
            'Which system keeps each kind of data recoverable: trendgen, or for the database CloudNativePG or the managed service (BACKUP_DATABASE_PITR)',
          items: open({
            data: { type: 'string', enum: ['postgres', 'objects', 'prompts', 'redis'] },
            by: { type: 'string', enum: ['trendgen', 'CloudNativePG', 'provider'] },
            how: str,
          }),
        },
      }),
      lastDrill: nullable(
        open({
          status: { type: 'string', enum: ['passed', 'failed'] },
          snapshotId: nullable(str),
          target: nullable(str),
          recoverySeconds: nullable({ type: 'number' }),
          finishedAt: time,
          reason: str,
        }),
      ),
      schedule: open({
        backup: str,
        nextBackupAt: nullable(time),
        drill: str,
        nextDrillAt: nullable(time),
      }),
    }),
  },
];
