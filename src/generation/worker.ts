import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Readable } from 'node:stream';
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { readAll } from '../blobstore/blobstore.ts';
import type { Sql } from '../db/connection.ts';
import type { ObjectStore } from '../objects/store.ts';
import { MissingTemplateValuesError, parsePrompt, renderTemplate } from '../prompts/index.ts';
import { bumpCounter, type GenerationOutput } from './jobs.ts';
import {
  acquireLease,
  finishFailed,
  finishSucceeded,
  type LeasedGeneration,
  releaseForRetry,
  renewLease,
} from './lease.ts';
import { limitImageMemory, workingPhoto } from './photo.ts';
import { makePreview } from './preview.ts';
import { type ImageProvider, PermanentProviderError } from './providers/provider.ts';
import { type GenerationJobData, QUEUE_NAME, retryDelay } from './queue.ts';

export interface WorkerSettings {
  concurrency: number;
  leaseSeconds: number;
  timeoutSeconds: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryCapMs: number;
}

export interface WorkerDeps {
  sql: Sql;
  connection: Redis;
  objects: ObjectStore;
  provider: ImageProvider;
  logger: Logger;
  settings: WorkerSettings;
  queuePrefix?: string;
}

/** Outputs are written by us, so their size is bounded only to catch a runaway provider. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

class LeaseLostError extends Error {}

function templateValues(lease: LeasedGeneration, params: Record<string, unknown>): Record<string, string> {
  const values: Record<string, string> = { subject: 'the person in the photo', trend: lease.trendTitle };
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      values[key] = String(value);
  }
  return values;
}

/** Runs one leased generation to its outputs; throws to signal failure, the caller decides retry or fail. */
async function render(
  deps: WorkerDeps,
  lease: LeasedGeneration,
  signal: AbortSignal,
): Promise<GenerationOutput[]> {
  const document = parsePrompt(lease.promptContent, lease.promptName);
  const parameters = { ...document.parameters, ...lease.params } as Record<string, unknown>;
  const prompt = renderTemplate(document.template, templateValues(lease, parameters));
  const { record, body } = await deps.objects.open(lease.photoKey);
  // One decode of the stored photo per job; every variant works from the small copy.
  const photo = await workingPhoto(await readAll(body), record.contentType);
  const outputs: GenerationOutput[] = [];
  for (let variant = 0; variant < lease.variants; variant++) {
    signal.throwIfAborted();
    const image = await deps.provider.generate({
      prompt,
      negative: document.negative,
      model: document.model,
      parameters,
      trend: {
        slug: lease.trend,
        title: lease.trendTitle,
        params: lease.params as Record<string, string | number | boolean>,
      },
      input: photo,
      variant,
      signal,
    });
    const preview = await makePreview(image.bytes, { watermark: 'trendgen' });
    // Objects first, then the rows that refer to them (I2).
    const original = await deps.objects.put(Readable.from([image.bytes]), {
      kind: 'output',
      maxBytes: MAX_OUTPUT_BYTES,
    });
    const small = await deps.objects.put(Readable.from([preview.bytes]), {
      kind: 'preview',
      maxBytes: MAX_OUTPUT_BYTES,
    });
    outputs.push({ variant, key: original.key, previewKey: small.key });
  }
  return outputs;
}

function isPermanent(error: unknown): boolean {
  return (
    error instanceof PermanentProviderError ||
    error instanceof MissingTemplateValuesError ||
    (error as Error).name === 'PromptValidationError'
  );
}

export function createGenerationWorker(deps: WorkerDeps): Worker<GenerationJobData> {
  const owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const { settings, sql, logger } = deps;
  // The process that runs jobs decodes users' photos: its native memory is bounded here, wherever it runs.
  limitImageMemory();

  const processJob = async (job: Job<GenerationJobData>): Promise<string> => {
    const lease = await acquireLease(sql, job.data.id, owner, settings.leaseSeconds);
    // Finished, deleted, or held by another live worker: this job is a duplicate and ends quietly.
    if (!lease) return 'skipped';
    const log = logger.child({ generation: lease.id, attempt: lease.attempts });
    const lost = new AbortController();
    const heartbeat = setInterval(
      () => {
        renewLease(sql, lease.id, owner, settings.leaseSeconds)
          .then((held) => {
            if (!held) lost.abort(new LeaseLostError('the lease was lost'));
          })
          .catch((error) => log.warn({ err: error }, 'lease renewal failed'));
      },
      Math.max(500, (settings.leaseSeconds * 1000) / 3),
    );
    const signal = AbortSignal.any([lost.signal, AbortSignal.timeout(settings.timeoutSeconds * 1000)]);
    try {
      const outputs = await render(deps, lease, signal);
      if (!(await finishSucceeded(sql, lease.id, owner, outputs))) {
        log.warn('lease lost before finishing; another attempt owns the generation');
        return 'lease-lost';
      }
      log.info({ outputs: outputs.length, queuedMs: Math.round(lease.queuedMs) }, 'generation succeeded');
      return 'succeeded';
    } catch (error) {
      if (lost.signal.aborted) return 'lease-lost';
      const reason = (error as Error).message ?? String(error);
      const permanent = isPermanent(error);
      await bumpCounter(sql, 'provider_errors', permanent ? 'permanent' : 'transient').catch(() => {});
      if (permanent || lease.attempts >= settings.maxAttempts) {
        const final = permanent ? reason : `Gave up after ${lease.attempts} attempts: ${reason}`;
        await finishFailed(sql, lease.id, owner, final);
        log.warn({ reason: final }, 'generation failed');
        return 'failed';
      }
      await releaseForRetry(sql, lease.id, owner, reason);
      log.warn({ reason }, 'transient failure; will retry');
      throw error;
    } finally {
      clearInterval(heartbeat);
    }
  };

  const worker = new Worker<GenerationJobData>(QUEUE_NAME, processJob, {
    connection: deps.connection,
    ...(deps.queuePrefix ? { prefix: deps.queuePrefix } : {}),
    concurrency: settings.concurrency,
    // A dead worker's job returns to the queue once its lock lapses; PostgreSQL's attempt count caps retries.
    lockDuration: Math.max(5000, settings.leaseSeconds * 1000),
    stalledInterval: Math.max(5000, settings.leaseSeconds * 1000),
    maxStalledCount: 1000,
    settings: {
      backoffStrategy: (attemptsMade: number) =>
        retryDelay(attemptsMade, settings.retryBaseMs, settings.retryCapMs),
    },
  });
  worker.on('error', (error) => logger.warn({ err: error }, 'queue connection error'));
  return worker;
}
