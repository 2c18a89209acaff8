import type { FastifyError, FastifyInstance } from 'fastify';
import { BlobNotFoundError, BlobStoreError, InvalidKeyError } from '../blobstore/blobstore.ts';
import { GenerationInputError, GenerationNotFoundError } from '../generation/jobs.ts';
import { pathOnly } from '../lib/redact.ts';
import {
  EmptyUploadError,
  InvalidImageError,
  ObjectNotFoundError,
  PayloadTooLargeError,
  UnsupportedTypeError,
} from '../objects/errors.ts';
import {
  InvalidPromptNameError,
  PromptConflictError,
  PromptFileTimeoutError,
  PromptNotFoundError,
  PromptValidationError,
} from '../prompts/index.ts';
import { TrendConflictError, TrendNotFoundError, UnknownPromptError } from '../trends/trends.ts';
import { BackupSyncError } from '../vault/stream/objects-sync.ts';

/** An error the API answers as it is: status, machine code, one plain sentence, optional details. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function classify(error: unknown): HttpError | undefined {
  if (error instanceof HttpError) return error;
  if (error instanceof PromptValidationError) {
    return new HttpError(422, 'invalid_prompt', error.message, { line: error.line, column: error.column });
  }
  if (error instanceof PromptConflictError) {
    return new HttpError(409, 'version_conflict', error.message, { currentVersion: error.currentVersion });
  }
  if (
    error instanceof PromptNotFoundError ||
    error instanceof TrendNotFoundError ||
    error instanceof ObjectNotFoundError
  ) {
    return new HttpError(404, 'not_found', error.message);
  }
  if (error instanceof InvalidPromptNameError) return new HttpError(400, 'invalid_name', error.message);
  if (error instanceof PromptFileTimeoutError)
    return new HttpError(503, 'prompt_file_unreadable', error.message);
  if (error instanceof GenerationNotFoundError) return new HttpError(404, 'not_found', error.message);
  if (error instanceof GenerationInputError) return new HttpError(422, 'invalid_generation', error.message);
  if (error instanceof BlobNotFoundError)
    return new HttpError(404, 'not_found', 'The object does not exist.');
  if (error instanceof InvalidKeyError) return new HttpError(400, 'invalid_key', error.message);
  if (error instanceof TrendConflictError) return new HttpError(409, 'conflict', error.message);
  if (error instanceof UnknownPromptError) return new HttpError(422, 'unknown_prompt', error.message);
  if (error instanceof PayloadTooLargeError) return new HttpError(413, 'payload_too_large', error.message);
  if (error instanceof UnsupportedTypeError)
    return new HttpError(415, 'unsupported_media_type', error.message);
  if (error instanceof InvalidImageError) return new HttpError(422, 'invalid_image', error.message);
  if (error instanceof EmptyUploadError) return new HttpError(400, 'empty_upload', error.message);
  if (error instanceof BlobStoreError) return new HttpError(503, 'storage_unavailable', error.message);
  if (error instanceof BackupSyncError) return new HttpError(503, 'backup_unavailable', error.message);
  if (isDatabaseUnavailable(error)) {
    return new HttpError(
      503,
      'service_unavailable',
      'PostgreSQL or Redis cannot be reached right now (it may be restarting): retry in a few seconds.',
    );
  }
  return undefined;
}

/** Connection failures (postgres.js's own codes and socket errors) and PostgreSQL's "shutting down / starting up / connection failure" classes. */
const DATABASE_UNAVAILABLE = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006',
]);

/**
 * A request that failed because PostgreSQL or Redis went away (a restart, a failover) is a 503 the client may
 * retry, not an internal error: nothing was acknowledged, and the connections come back on the next request.
 */
function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && DATABASE_UNAVAILABLE.has(code);
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = classify(error);
    if (known) {
      if (known.status >= 500) request.log.error({ err: error }, known.message);
      if (known.status === 503) reply.header('retry-after', '2');
      return reply
        .status(known.status)
        .send({ error: { code: known.code, message: known.message, ...known.details } });
    }
    if (error.validation) {
      return reply.status(400).send({ error: { code: 'invalid_request', message: error.message } });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      const code =
        error.statusCode === 413
          ? 'payload_too_large'
          : error.statusCode === 415
            ? 'unsupported_media_type'
            : 'bad_request';
      return reply.status(error.statusCode).send({ error: { code, message: error.message } });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send({
      error: {
        code: 'internal',
        message: `An internal error occurred; quote request id ${request.id} when reporting it.`,
      },
    });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      // The path only: a query string may carry a secret, and a body must never echo it.
      .send({
        error: { code: 'not_found', message: `No route ${request.method} ${pathOnly(request.url)}.` },
      }),
  );
}
