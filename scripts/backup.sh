#!/bin/sh
# Kept for crontabs that call the classic script (0 3 * * * cd /path/to/project && ./scripts/backup.sh):
# it now runs `trendgen backup`, which reads the same BACKUP_DIR, BACKUP_S3_URI and
# BACKUP_RETENTION_DAYS. Arguments are passed on (e.g. --json). The exit status is trendgen's.
set -eu

# The project root is this script's parent folder, wherever cron starts it from.
script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
cd -- "$script_dir/.."

# cron's PATH is short (/usr/bin:/bin); node often lives in /usr/local/bin. NODE overrides the choice.
PATH="$PATH:/usr/local/bin"
node=${NODE:-node}
if ! command -v "$node" >/dev/null 2>&1; then
  echo "backup.sh: cannot find node (PATH=$PATH); set NODE=/path/to/node in the crontab." >&2
  exit 127
fi

# glibc's malloc settings of bin/trendgen.js's first line (src/lib/allocator.ts), unless the crontab sets its own:
# without them a backup keeps 100 MB and more of buffers it has freed.
MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_-1048576}
MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX-2}
export MALLOC_MMAP_THRESHOLD_ MALLOC_ARENA_MAX

# .env is loaded by node itself (--env-file), not sourced: it is KEY=value data, not a shell script, and
# node gives variables already set in the environment precedence, exactly as trendgen's own reader does.
if [ -f .env ]; then
  exec "$node" --env-file=.env bin/trendgen.js backup "$@"
fi
exec "$node" bin/trendgen.js backup "$@"
