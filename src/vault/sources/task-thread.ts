import { type TransferListItem, Worker } from 'node:worker_threads';

/** What a task thread answers when the task failed there, or the thread is gone. */
export interface TaskFailed {
  n: number;
  error: string;
}

/**
 * One worker thread that runs numbered tasks and answers each with a result of the same number; the worker side
 * is `serveTasks`. The tasks asked for in one turn of the event loop travel in one message and come back in one:
 * a message each cost the main thread 1.3 s of a first backup of 40,000 objects. Once the thread fails or ends,
 * every task waiting and every later one gets a TaskFailed, so a caller can always fall back to doing the work
 * itself.
 */
export class TaskThread<Task extends object, Result extends { n: number }> {
  private readonly waiting = new Map<number, (result: Result | TaskFailed) => void>();
  private next = 0;
  /** Set once the worker failed or ended. */
  private gone = false;

  /** Tasks not posted yet, and what they move: posted together once the current turn of the event loop ends. */
  private batch: { tasks: Task[]; transfer: TransferListItem[] } | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (results: Result[]) => {
      for (const result of results) {
        this.waiting.get(result.n)?.(result);
        this.waiting.delete(result.n);
      }
    });
    const fail = (reason: string) => {
      this.gone = true;
      for (const settle of this.waiting.values()) settle({ n: -1, error: reason });
      this.waiting.clear();
    };
    worker.on('error', (error) => fail(error.message));
    worker.on('exit', () => fail('the worker thread ended'));
  }

  /**
   * Starts `script`, a module beside the caller named without its extension (`.ts` when the caller runs from
   * source, as in tests and tsx, which then needs the TypeScript loader in the thread too; `.js` when built).
   * A small young generation: a buffer's memory goes back when its object is collected, and young collections
   * then come often enough to keep a backup's or a restore's peak memory under 300 MB with the thread.
   */
  static start<Task extends object, Result extends { n: number }>(
    caller: string,
    script: string,
    workerData: unknown,
  ): TaskThread<Task, Result> {
    const here = new URL(caller);
    const source = here.pathname.endsWith('.ts');
    const url = new URL(`./${script}.${source ? 'ts' : 'js'}`, here);
    const resourceLimits = { maxYoungGenerationSizeMb: 2 };
    const worker = source
      ? new Worker(
          `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`,
          { eval: true, workerData, resourceLimits },
        )
      : new Worker(url, { workerData, resourceLimits });
    return new TaskThread<Task, Result>(worker);
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** Runs one task (its `n` is set here); a TaskFailed when it failed or the thread is gone. */
  run(task: Omit<Task, 'n'>, transfer: readonly TransferListItem[] = []): Promise<Result | TaskFailed> {
    if (this.gone) return Promise.resolve({ n: -1, error: 'the worker thread ended' });
    const n = this.next++;
    if (!this.batch) {
      const batch = { tasks: [] as Task[], transfer: [] as TransferListItem[] };
      this.batch = batch;
      setImmediate(() => {
        this.batch = undefined;
        if (!this.gone) this.worker.postMessage(batch.tasks, batch.transfer);
      });
    }
    this.batch.tasks.push({ ...task, n } as Task);
    this.batch.transfer.push(...transfer);
    return new Promise((resolve) => {
      this.waiting.set(n, resolve);
    });
  }

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await this.worker.terminate();
  }
}

/**
 * The worker side of a TaskThread: the tasks of one message are run and their results posted back in
 * one message (with what `transfer` names moved, not copied), a failure as a TaskFailed; 'close' ends the thread
 * after `onClose`.
 */
export function serveTasks<Task extends { n: number }, Result extends { n: number }>(
  port: import('node:worker_threads').MessagePort,
  handle: (task: Task) => Result | Promise<Result>,
  options: { transfer?: (result: Result) => TransferListItem[]; onClose?: () => void } = {},
): void {
  port.on('message', async (tasks: Task[] | 'close') => {
    if (tasks === 'close') {
      options.onClose?.();
      port.close();
      return;
    }
    // Started together, as tasks that came one per message were: one task's wait (zstd on the thread pool) is
    // another's turn.
    const transfer: TransferListItem[] = [];
    const results = await Promise.all(
      tasks.map((task) =>
        Promise.resolve()
          .then(() => handle(task))
          .then(
            (result): Result | TaskFailed => {
              transfer.push(...(options.transfer?.(result) ?? []));
              return result;
            },
            (error: unknown): TaskFailed => ({ n: task.n, error: (error as Error).message ?? String(error) }),
          ),
      ),
    );
    port.postMessage(results, transfer);
  });
}
