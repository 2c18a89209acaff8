import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

function lookupUser(name: string): RunAs | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [user, , uid, gid] = line.split(':');
      if (user === name && uid && gid) return { user, uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    // No /etc/passwd: not a system where we run as root.
  }
  return undefined;
}

/**
 * PostgreSQL refuses to run as root. When we are root, the server runs as the `postgres` system user
 * (or `nobody`), which must be able to reach its data folder.
 */
export function runAsFor(program: string, root: string): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const account = lookupUser('postgres') ?? lookupUser('nobody');
  if (!account) {
    throw new Error(
      `${program} cannot run as root and no unprivileged user (postgres or nobody) exists: create one with \`useradd --system postgres\`.`,
    );
  }
  let dir = path.resolve(root);
  for (;;) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
    try {
      const stat = statSync(dir);
      const reachable = stat.uid === account.uid ? stat.mode & 0o100 : stat.mode & 0o001;
      if (!reachable) {
        throw new Error(
          `${program} runs as the system user ${account.user}, which cannot enter ${dir}: run \`chmod o+x ${dir}\` or choose a DATA_DIR elsewhere.`,
        );
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return account;
}
