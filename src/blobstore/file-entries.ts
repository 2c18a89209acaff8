import { fsyncDir } from '../lib/files.ts';

/**
 * Directories holding files renamed into place whose entries are not yet durable (puts with `durable:
 * 'contents'`): `sync` fsyncs each once, however many files went into it, and returns only once every sync begun
 * before it (by any caller) is done, so a caller never goes on while a directory it wrote into is still unsynced.
 */
export class DeferredEntries {
  private readonly dirs = new Set<string>();
  private readonly syncing = new Set<Promise<void>>();

  add(dir: string): void {
    this.dirs.add(dir);
  }

  async sync(): Promise<void> {
    const dirs = [...this.dirs];
    this.dirs.clear();
    const job = Promise.all(dirs.map((dir) => fsyncDir(dir))).then(
      () => {},
      (error: unknown) => {
        // Not durable after all: the next sync tries them again.
        for (const dir of dirs) this.dirs.add(dir);
        throw error;
      },
    );
    this.syncing.add(job);
    try {
      await Promise.all([...this.syncing]);
    } finally {
      this.syncing.delete(job);
    }
  }
}
