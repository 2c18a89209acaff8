import {
  closeSync,
  type Dirent,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { isAlive } from './process.ts';

/**
 * Files and folders that crashed writers leave behind (upload spools, temp files, scratch folders), removed only
 * when nothing can still be using them: older than a grace period, no process holding a file open in them or
 * working inside them (read from /proc where there is one), and no live process named by a pid file inside.
 */

export interface Removed {
  path: string;
  bytes: number;
}

/**
 * Every path some live process has open or works in (its cwd), resolved; empty without /proc (then age and pid
 * files alone decide). Processes of other users cannot be read: their files count as not open, which is why
 * age comes first.
 */
export function pathsInUse(): Set<string> {
  const used = new Set<string>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return used;
  }
  for (const pid of pids) {
    try {
      used.add(readlinkSync(`/proc/${pid}/cwd`));
    } catch {
      // Gone, or not ours to read.
    }
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        used.add(readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/ \(deleted\)$/, ''));
      } catch {
        // Closed while we looked.
      }
    }
  }
  return used;
}

interface TreeFacts {
  newestMs: number;
  bytes: number;
  livePid: boolean;
  exists: boolean;
}

/** The newest mtime under `root` (itself included), its size, and whether a pid file inside names a live process. */
function treeFacts(root: string): TreeFacts {
  const facts: TreeFacts = { newestMs: 0, bytes: 0, livePid: false, exists: false };
  const visit = (file: string, isDir: boolean) => {
    const info = statSync(file, { throwIfNoEntry: false });
    if (!info) return;
    facts.newestMs = Math.max(facts.newestMs, info.mtimeMs);
    facts.exists = true;
    if (!isDir) {
      facts.bytes += info.size;
      if (/(^postmaster|\.)pid$/.test(path.basename(file))) {
        const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0] ?? '', 10);
        if (pid > 0 && isAlive(pid)) facts.livePid = true;
      }
      return;
    }
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(file, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) visit(path.join(file, entry.name), entry.isDirectory());
  };
  visit(root, statSync(root, { throwIfNoEntry: false })?.isDirectory() ?? false);
  return facts;
}

/**
 * Removes the entries of `dir` that `select` accepts once they are idle: the newest change anywhere inside is
 * older than `graceMs`, no file of theirs is in `inUse`, and no pid file inside names a live process.
 */
export function removeIdleEntries(
  dir: string,
  graceMs: number,
  inUse: Set<string>,
  select: (name: string) => boolean = () => true,
  now = Date.now(),
): Removed[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: Removed[] = [];
  for (const name of names.filter(select)) {
    const entry = path.join(dir, name);
    const facts = treeFacts(entry);
    if (!facts.exists || now - facts.newestMs < graceMs || facts.livePid) continue;
    if ([...inUse].some((used) => used === entry || used.startsWith(`${entry}${path.sep}`))) continue;
    rmSync(entry, { recursive: true, force: true });
    removed.push({ path: entry, bytes: facts.bytes });
  }
  return removed;
}

/**
 * Keeps a directory open for as long as an operation uses it: the collector sees it in /proc and leaves the
 * folder alone even when nothing in it changes for a while, and a killed process lets go of it by itself.
 * Returns the function that lets go.
 */
export function holdOpen(dir: string): () => void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
  } catch {
    // Without the hold the folder is still protected by its age while it is written.
  }
  return () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
}
