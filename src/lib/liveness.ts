import { pbkdf2 } from 'node:crypto';
import { utimes, writeFile } from 'node:fs/promises';

export interface LivenessStatus {
  ok: boolean;
  /** Set when not ok: one sentence saying what is stuck. */
  problem?: string;
}

/** What a supervised child sends its supervisor over the IPC channel, once per interval. */
export interface Heartbeat extends LivenessStatus {
  type: 'trendgen-heartbeat';
}

export function isHeartbeat(message: unknown): message is Heartbeat {
  return (message as Heartbeat | null)?.type === 'trendgen-heartbeat';
}

/**
 * Notices a process that can no longer do its work: a libuv thread pool whose threads are all blocked (every
 * asynchronous file call, DNS lookup, crypto and zlib job waits in its queue, so uploads and file reads never
 * answer), or an event loop that stopped turning. A tiny job is queued on the pool every interval; when it has
 * not run for `stuckAfterMs`, the process is stuck. A stuck event loop cannot report itself: the heartbeats
 * stop, which is what the supervisor (and a liveness probe timing out) notice.
 */
export class Liveness {
  private probeSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly stuckAfterMs: number,
    private readonly intervalMs = Math.max(100, Math.min(1000, Math.floor(stuckAfterMs / 4))),
  ) {}

  /** Starts probing; `onBeat` is called every interval with the current status (the heartbeat). */
  start(onBeat?: (status: LivenessStatus) => void): this {
    this.timer = setInterval(() => {
      if (this.probeSince === undefined) {
        const since = Date.now();
        this.probeSince = since;
        // One iteration of an 8-byte key: microseconds of work, but queued on the same pool as fs calls.
        pbkdf2('', '', 1, 8, 'sha256', () => {
          if (this.probeSince === since) this.probeSince = undefined;
        });
      }
      onBeat?.(this.status());
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  status(): LivenessStatus {
    const waiting = this.probeSince === undefined ? 0 : Date.now() - this.probeSince;
    if (waiting <= this.stuckAfterMs) return { ok: true };
    return {
      ok: false,
      problem: `the libuv thread pool has run no job for ${Math.round(waiting / 1000)} s: every thread is blocked (a file that never answers?), so file reads and uploads cannot finish`,
    };
  }
}

/**
 * Keeps a file's modification time at the last healthy heartbeat, for a probe that cannot ask the process
 * (Kubernetes runs `find FILE -newermt '-60 seconds'` in the container of a process that serves no HTTP).
 * A stuck event loop or thread pool stops the touches, and the file grows old.
 */
function fileToucher(file: string): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    const now = new Date();
    utimes(file, now, now)
      .catch((error: NodeJS.ErrnoException) =>
        error.code === 'ENOENT' ? writeFile(file, '') : Promise.reject(error),
      )
      // A probe file that cannot be written shows as a stale file: the probe says so, nothing else can.
      .catch(() => {})
      .finally(() => {
        pending = false;
      });
  };
}

/**
 * Starts the liveness probe of a service process and, when it runs under `trendgen up` (an IPC channel to the
 * supervisor), sends it a heartbeat every interval; with `file` (LIVENESS_FILE), touches it at each healthy one.
 */
export function startLiveness(stuckAfterMs: number, file?: string): Liveness {
  const send = process.send?.bind(process);
  // The channel must not keep a process alive that would otherwise exit.
  process.channel?.unref();
  const touch = file ? fileToucher(file) : undefined;
  return new Liveness(stuckAfterMs).start((status) => {
    if (status.ok) touch?.();
    if (!send || !process.connected) return;
    const beat: Heartbeat = { type: 'trendgen-heartbeat', ...status };
    send(beat, undefined, undefined, () => {});
  });
}
