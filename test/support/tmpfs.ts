import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, statfsSync } from 'node:fs';
import { tempDir } from './temp.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Room that no scenario fills by accident. */
export const ROOMY = 256 * MiB;

/**
 * Whether this process may mount a tmpfs (root on Linux); the reason it may not otherwise. The disk-full
 * scenarios fill a real filesystem: an injected ENOSPC would test a mock, not the disk.
 */
export function probeMount(): string | undefined {
  if (process.platform !== 'linux') return `tmpfs needs Linux, this is ${process.platform}`;
  const probe = tempDir('disk-full-probe');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe.dir], { stdio: 'pipe' });
    execFileSync('umount', [probe.dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return `mount -t tmpfs failed (${stderr || (error as Error).message})`;
  } finally {
    probe.remove();
  }
}

/** Prints why a disk-full file is skipped (the same words for every such file); returns the reason. */
export function tmpfsUnavailable(label: string): string | undefined {
  const cannotMount = probeMount();
  if (cannotMount) {
    console.log(
      `${label}: SKIPPED: ${cannotMount}. These scenarios fill a real filesystem; an injected ENOSPC would ` +
        'test a mock, not the disk, so they run only where a tmpfs can be mounted (root on Linux).',
    );
  }
  return cannotMount;
}

/** A tmpfs of its own at `dir`, unmounted by `unmount()` even when a test failed. */
export class Tmpfs {
  private mounted = false;
  constructor(readonly dir: string) {}

  mount(bytes = ROOMY): void {
    mkdirSync(this.dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib(bytes)}k,mode=0755`, 'tmpfs', this.dir]);
    this.mounted = true;
  }

  /** Bytes in use (tmpfs counts whole pages). */
  used(): number {
    const s = statfsSync(this.dir);
    return (s.blocks - s.bfree) * s.bsize;
  }

  /** Bytes still free. */
  free(): number {
    const s = statfsSync(this.dir);
    return s.bavail * s.bsize;
  }

  /** Remounts with room for exactly `free` more bytes (rounded to pages); a tmpfs never shrinks below use. */
  leave(free: number): void {
    execFileSync('mount', ['-o', `remount,size=${kib(this.used() + free)}k`, this.dir], { stdio: 'pipe' });
  }

  unmount(): void {
    if (!this.mounted) return;
    execFileSync('umount', ['-l', this.dir]);
    this.mounted = false;
    if (existsSync(this.dir)) rmdirSync(this.dir);
  }
}

export const kib = (bytes: number) => Math.max(4, Math.ceil(bytes / (4 * KiB)) * 4);
