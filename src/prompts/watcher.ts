import { type FSWatcher, mkdirSync, statSync, watch } from 'node:fs';
import type { Sql } from '../db/connection.ts';
import { type SyncResult, syncPromptFile } from './history.ts';
import { PROMPT_FILE_PATTERN } from './prompt-file.ts';
import { type LargeFileCache, type SyncReport, syncPromptsDir } from './sync-dir.ts';

/** The subset of pino the watcher uses. */
export interface PromptLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WatchOptions {
  rescanSeconds: number;
  maxBytes: number;
  logger?: PromptLogger;
  /** Called after something was recorded: a new version, an invalid file, a deletion. */
  onChange?: (result: SyncResult) => void;
  /** Quiet time after the last event on a file before it is read; editors write in several steps. */
  debounceMs?: number;
}

export interface PromptWatcher {
  /** The first full scan; rejects if it failed (the watcher keeps retrying on its schedule). */
  ready: Promise<SyncReport>;
  /** A full scan now; concurrent calls share one scan, plus at most one queued after it. */
  rescan(): Promise<SyncReport>;
  close(): Promise<void>;
}

const silent: PromptLogger = { info() {}, warn() {}, error() {} };

/**
 * Keeps prompt history in step with the folder: fs.watch for quick reaction, a periodic full scan because
 * fs.watch can miss events (network filesystems, overflowing inotify queues, a replaced folder).
 */
export function watchPrompts(sql: Sql, promptsDir: string, options: WatchOptions): PromptWatcher {
  const logger = options.logger ?? silent;
  const debounceMs = options.debounceMs ?? 150;
  const largeFileCache: LargeFileCache = new Map();
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  let watcher: FSWatcher | undefined;
  let watchedIno: number | undefined;
  let lastSkipped = '';

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    const forget = () => inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  };

  const report = (result: SyncResult) => {
    if (!result.changed) return;
    const fields = { name: result.name, version: result.version };
    if (result.outcome === 'added')
      logger.info({ ...fields, origin: 'file' }, 'prompt: new version recorded');
    else if (result.outcome === 'invalid') {
      logger.warn(
        { ...fields, error: result.error },
        'prompt: file is invalid; the last valid version stays in use',
      );
    } else if (result.outcome === 'deleted') logger.warn(fields, 'prompt: file deleted; its history is kept');
    else logger.info(fields, 'prompt: file matches its current version again');
    try {
      options.onChange?.(result);
    } catch (error) {
      logger.error({ err: error, name: result.name }, 'prompt: onChange handler failed');
    }
  };

  const syncOne = (name: string): Promise<void> => {
    // One sync per name at a time: an event during a sync starts another one after it.
    const previous = running.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (closed) return;
      try {
        report(await syncPromptFile(sql, promptsDir, name, { maxBytes: options.maxBytes }));
      } catch (error) {
        logger.error({ err: error, name }, 'prompt: could not record the file; the next scan retries');
      }
    });
    running.set(name, next);
    void next.then(() => {
      if (running.get(name) === next) running.delete(name);
    });
    return track(next);
  };

  const onEvent = (filename: string | Buffer | null) => {
    if (closed) return;
    const base = filename === null ? null : String(filename);
    if (base === null) {
      void rescan().catch(() => {});
      return;
    }
    // Editors' temp and swap files are not prompts; their rename onto <name>.yaml raises an event for it.
    if (!PROMPT_FILE_PATTERN.test(base)) return;
    const name = base.slice(0, -'.yaml'.length);
    clearTimeout(timers.get(name));
    timers.set(
      name,
      setTimeout(() => {
        timers.delete(name);
        void syncOne(name);
      }, debounceMs),
    );
  };

  const ensureWatching = () => {
    if (closed) return;
    mkdirSync(promptsDir, { recursive: true });
    const ino = statSync(promptsDir).ino;
    if (watcher && ino === watchedIno) return;
    // The folder was replaced (rm -rf and mkdir, a restore): the old watch sees nothing any more.
    watcher?.close();
    watcher = watch(promptsDir, { persistent: false }, (_event, filename) => onEvent(filename));
    watchedIno = ino;
    watcher.on('error', (error) => {
      logger.error({ err: error, dir: promptsDir }, 'prompt: watching the folder failed; relying on rescans');
      watcher?.close();
      watcher = undefined;
    });
  };

  const scan = async (): Promise<SyncReport> => {
    try {
      ensureWatching();
    } catch (error) {
      logger.error({ err: error, dir: promptsDir }, 'prompt: cannot watch the folder; relying on rescans');
    }
    const result = await syncPromptsDir(sql, promptsDir, { maxBytes: options.maxBytes, largeFileCache });
    for (const change of result.changes) report(change);
    for (const failure of result.failed) {
      logger.error(failure, 'prompt: could not record the file; the next scan retries');
    }
    const skipped = result.skipped.join('\n');
    if (skipped && skipped !== lastSkipped) {
      logger.warn({ files: result.skipped }, 'prompt: file names that are not prompt names were skipped');
    }
    lastSkipped = skipped;
    return result;
  };

  let current: Promise<SyncReport> | undefined;
  let queued: Promise<SyncReport> | undefined;
  const rescan = (): Promise<SyncReport> => {
    if (closed) return Promise.reject(new Error('the prompt watcher is closed'));
    if (!current) {
      current = track(scan()).finally(() => {
        current = undefined;
      });
      return current;
    }
    queued ??= current
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return rescan();
      });
    return queued;
  };

  const periodic = async () => {
    try {
      await rescan();
    } catch (error) {
      if (!closed) logger.error({ err: error }, 'prompt: scan failed; retrying at the next interval');
    }
  };

  const ready = rescan();
  // The caller may never await ready; the periodic scan reports later failures.
  ready.catch((error) =>
    logger.error({ err: error }, 'prompt: first scan failed; retrying at the next interval'),
  );
  const interval = setInterval(() => void periodic(), options.rescanSeconds * 1000);
  interval.unref();

  return {
    ready,
    rescan,
    close: async () => {
      closed = true;
      clearInterval(interval);
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      watcher?.close();
      watcher = undefined;
      // Let running syncs finish, so the caller can close the database right after.
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
