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

/** Logs what a sync recorded and tells `onChange`; a failing handler is logged, never thrown. */
function reportSync(logger: PromptLogger, onChange: WatchOptions['onChange'], result: SyncResult): void {
  if (!result.changed) return;
  const fields = { name: result.name, version: result.version };
  if (result.outcome === 'added') logger.info({ ...fields, origin: 'file' }, 'prompt: new version recorded');
  else if (result.outcome === 'invalid') {
    logger.warn(
      { ...fields, error: result.error },
      'prompt: file is invalid; the last valid version stays in use',
    );
  } else if (result.outcome === 'deleted') logger.warn(fields, 'prompt: file deleted; its history is kept');
  else logger.info(fields, 'prompt: file matches its current version again');
  try {
    onChange?.(result);
  } catch (error) {
    logger.error({ err: error, name: result.name }, 'prompt: onChange handler failed');
  }
}

/**
 * Keeps prompt history in step with the folder: fs.watch for quick reaction, a periodic full scan because
 * fs.watch can miss events (network filesystems, overflowing inotify queues, a replaced folder).
 */
class FolderWatcher {
  private readonly logger: PromptLogger;
  private readonly debounceMs: number;
  private readonly largeFileCache: LargeFileCache = new Map();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** One sync per name at a time: an event during a sync starts another one after it. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;
  private watcher: FSWatcher | undefined;
  private watchedIno: number | undefined;
  private lastSkipped = '';
  private current: Promise<SyncReport> | undefined;
  private queued: Promise<SyncReport> | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly promptsDir: string,
    private readonly options: WatchOptions,
  ) {
    this.logger = options.logger ?? silent;
    this.debounceMs = options.debounceMs ?? 150;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    const forget = () => this.inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  private report(result: SyncResult): void {
    reportSync(this.logger, this.options.onChange, result);
  }

  private syncOne(name: string): Promise<void> {
    const previous = this.running.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (this.closed) return;
      try {
        this.report(
          await syncPromptFile(this.sql, this.promptsDir, name, { maxBytes: this.options.maxBytes }),
        );
      } catch (error) {
        this.logger.error({ err: error, name }, 'prompt: could not record the file; the next scan retries');
      }
    });
    this.running.set(name, next);
    void next.then(() => {
      if (this.running.get(name) === next) this.running.delete(name);
    });
    return this.track(next);
  }

  private onEvent(filename: string | Buffer | null): void {
    if (this.closed) return;
    const base = filename === null ? null : String(filename);
    if (base === null) {
      void this.rescan().catch(() => {});
      return;
    }
    // Editors' temp and swap files are not prompts; their rename onto <name>.yaml raises an event for it.
    if (!PROMPT_FILE_PATTERN.test(base)) return;
    const name = base.slice(0, -'.yaml'.length);
    clearTimeout(this.timers.get(name));
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        void this.syncOne(name);
      }, this.debounceMs),
    );
  }

  private ensureWatching(): void {
    if (this.closed) return;
    mkdirSync(this.promptsDir, { recursive: true });
    const ino = statSync(this.promptsDir).ino;
    if (this.watcher && ino === this.watchedIno) return;
    // The folder was replaced (rm -rf and mkdir, a restore): the old watch sees nothing any more.
    this.watcher?.close();
    this.watcher = watch(this.promptsDir, { persistent: false }, (_event, filename) =>
      this.onEvent(filename),
    );
    this.watchedIno = ino;
    this.watcher.on('error', (error) => {
      this.logger.error(
        { err: error, dir: this.promptsDir },
        'prompt: watching the folder failed; relying on rescans',
      );
      this.watcher?.close();
      this.watcher = undefined;
    });
  }

  private async scan(): Promise<SyncReport> {
    try {
      this.ensureWatching();
    } catch (error) {
      this.logger.error(
        { err: error, dir: this.promptsDir },
        'prompt: cannot watch the folder; relying on rescans',
      );
    }
    const result = await syncPromptsDir(this.sql, this.promptsDir, {
      maxBytes: this.options.maxBytes,
      largeFileCache: this.largeFileCache,
    });
    for (const change of result.changes) this.report(change);
    for (const failure of result.failed) {
      this.logger.error(failure, 'prompt: could not record the file; the next scan retries');
    }
    const skipped = result.skipped.join('\n');
    if (skipped && skipped !== this.lastSkipped) {
      this.logger.warn(
        { files: result.skipped },
        'prompt: file names that are not prompt names were skipped',
      );
    }
    this.lastSkipped = skipped;
    return result;
  }

  rescan(): Promise<SyncReport> {
    if (this.closed) return Promise.reject(new Error('the prompt watcher is closed'));
    if (!this.current) {
      this.current = this.track(this.scan()).finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    this.queued ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.rescan();
      });
    return this.queued;
  }

  async periodic(): Promise<void> {
    try {
      await this.rescan();
    } catch (error) {
      if (!this.closed)
        this.logger.error({ err: error }, 'prompt: scan failed; retrying at the next interval');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.watcher?.close();
    this.watcher = undefined;
    // Let running syncs finish, so the caller can close the database right after.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}

export function watchPrompts(sql: Sql, promptsDir: string, options: WatchOptions): PromptWatcher {
  const folder = new FolderWatcher(sql, promptsDir, options);
  const logger = options.logger ?? silent;
  const ready = folder.rescan();
  // The caller may never await ready; the periodic scan reports later failures.
  ready.catch((error) =>
    logger.error({ err: error }, 'prompt: first scan failed; retrying at the next interval'),
  );
  const interval = setInterval(() => void folder.periodic(), options.rescanSeconds * 1000);
  interval.unref();
  return {
    ready,
    rescan: () => folder.rescan(),
    close: async () => {
      clearInterval(interval);
      await folder.close();
    },
  };
}
