/**
 * Resolves when the process is asked to stop: SIGTERM, SIGINT, or — for a child of `trendgen up` — its
 * supervisor disappearing (Node has no parent-death signal; a supervisor killed with SIGKILL must not leave
 * children holding ports and leases).
 */
export function untilStopped(): Promise<string> {
  return new Promise((resolve) => {
    let done = false;
    const stop = (reason: string) => {
      if (done) return;
      done = true;
      resolve(reason);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    if (process.env.TRENDGEN_SUPERVISED) {
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) stop('supervisor gone');
      }, 1000).unref();
    }
  });
}
