/**
 * glibc malloc settings for trendgen's processes, read by the C library when a process starts (so they reach a
 * process only through its environment). A backup or restore moves gigabytes through buffers of 0.5–8 MiB, made
 * and freed on the main thread and on libuv's threads. With glibc's defaults, freed buffers stay in the process:
 * its mmap threshold rises to the largest buffer freed (up to 32 MiB), so later ones come from heaps that never
 * shrink, and each thread that allocates gets a heap of its own. On the files shape of bench/backup.ts the peak RSS
 * was 299–339 MB (backup) and 305–400 MB (restore) with far less in use; with these settings 285–287 MB and
 * 251–264 MB, for about 7% more wall time (docs/benchmarks.md, "Memory: what the peak is made of").
 */
export const ALLOCATOR_SETTINGS: Readonly<Record<string, string>> = {
  /** Buffers of 1 MiB and more are mapped and unmapped on their own, so a freed one goes back at once. */
  MALLOC_MMAP_THRESHOLD_: String(1024 * 1024),
  /** Two heaps shared by every thread instead of one per thread (up to 8 per core). */
  MALLOC_ARENA_MAX: '2',
};

/** The settings `env` does not set already (an operator's own value wins); none off Linux. */
export function allocatorEnvironment(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): Record<string, string> {
  if (platform !== 'linux') return {};
  return Object.fromEntries(Object.entries(ALLOCATOR_SETTINGS).filter(([name]) => env[name] === undefined));
}
