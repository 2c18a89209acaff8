#!/bin/sh
# Stops the Compose stack: docker compose -f deploy/docker-compose.yml down [ARGS...]
#
# It refuses -v / --volumes (in any position, also inside a quoted "down -v"): they delete the named volumes,
# that is the PostgreSQL database, Redis and the object store. To really delete everything, add --delete-all-data;
# even then it runs only when an offsite backup younger than an hour exists, checked with
#   trendgen snapshots --offsite --json
# TRENDGEN_BIN replaces the command that runs trendgen for that check (default: node bin/trendgen.js, with
# deploy/.env loaded when present). When the host has no Node.js, run it in the stack instead:
#   TRENDGEN_BIN='docker compose -f deploy/docker-compose.yml exec -T api node bin/trendgen.js' scripts/stop.sh ...
# Exit status: docker compose's; 1 when refused (and then nothing was run).
set -euf # no globbing: arguments are split into words below, never expanded as patterns

max_age=3600

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
root=$(dirname -- "$script_dir")
compose_file="$root/deploy/docker-compose.yml"
cd -- "$root"

refuse() {
  echo "stop.sh: $1" >&2
  exit 1
}

# Sort the arguments: our own flag is taken out, the rest goes to `down` unchanged. A leading `down` is dropped,
# so `stop.sh down -v` is read like `stop.sh -v`.
delete_all_data=false
wants_volumes=false
first=true
for arg in "$@"; do
  shift
  if [ "$first" = true ] && [ "$arg" = down ]; then
    first=false
    continue
  fi
  first=false
  if [ "$arg" = --delete-all-data ]; then
    delete_all_data=true
    continue
  fi
  # Every word of every argument is looked at, so a quoted "down -v" is caught as well.
  for word in $arg; do
    case "$word" in
      --volumes | --volumes=*) wants_volumes=true ;;
      --*) ;;
      -*v*) wants_volumes=true ;; # -v, and -v grouped with other short flags (-tv)
    esac
  done
  set -- "$@" "$arg"
done

if [ "$wants_volumes" = true ]; then
  if [ "$delete_all_data" != true ]; then
    refuse "refusing -v: it deletes the PostgreSQL, Redis and object volumes for good; stop without -v to keep the data, or add --delete-all-data (allowed only when an offsite backup younger than an hour exists) if you really mean to delete everything."
  fi

  command -v node >/dev/null 2>&1 ||
    refuse "refusing -v --delete-all-data: Node.js is needed to check for a recent offsite backup and none is on PATH; install Node.js 20 first."
  if [ -n "${TRENDGEN_BIN:-}" ]; then
    trendgen=$TRENDGEN_BIN
  elif [ -f deploy/.env ]; then
    # node reads deploy/.env as KEY=value data (never sourced); variables already set keep precedence.
    trendgen="node --env-file=deploy/.env bin/trendgen.js"
  else
    trendgen="node bin/trendgen.js"
  fi

  errors=$(mktemp)
  trap 'rm -f "$errors"' EXIT
  # TRENDGEN_BIN may hold a command with arguments: word splitting is intended here.
  # shellcheck disable=SC2086
  listing=$($trendgen snapshots --offsite --json 2>"$errors") || true

  # "ok <what protects the data>" or "no <why not>". A small node program, because JSON is not for sed.
  verdict=$(printf '%s' "$listing" | TRENDGEN_ERRORS="$errors" MAX_AGE="$max_age" node -e '
    const fs = require("node:fs");
    const text = fs.readFileSync(0, "utf8");
    const stderr = fs.readFileSync(process.env.TRENDGEN_ERRORS, "utf8").trim().split("\n").filter(Boolean);
    const last = stderr.length ? stderr[stderr.length - 1].replace(/^trendgen: /, "").replace(/\.$/, "") : "";
    const say = (line) => {
      process.stdout.write(line + "\n");
      process.exit(0);
    };
    let doc;
    try {
      doc = JSON.parse(text);
    } catch {
      say("no the offsite snapshots could not be listed (" + (last || "trendgen printed no JSON") + ")");
    }
    const unreachable = Array.isArray(doc.unreachable) ? doc.unreachable : [];
    if (unreachable.length) {
      const what = unreachable.map((u) => u.target + " (" + String(u.error).replace(/\.$/, "") + ")").join(", ");
      say("no an offsite target is unreachable: " + what);
    }
    const offsite = (Array.isArray(doc.snapshots) ? doc.snapshots : []).filter(
      (s) => Array.isArray(s.targets) && s.targets.some((t) => t !== "local") && Number.isFinite(Date.parse(s.time)),
    );
    if (!offsite.length) say("no no offsite target holds a snapshot");
    const newest = offsite.reduce((a, b) => (Date.parse(b.time) > Date.parse(a.time) ? b : a));
    const age = Math.round((Date.now() - Date.parse(newest.time)) / 1000);
    const max = Number(process.env.MAX_AGE);
    const id = String(newest.id).slice(0, 12);
    // A snapshot from the future (a wrong clock) proves nothing either.
    if (age < -300) say("no the newest offsite snapshot " + id + " is dated " + newest.time + ", in the future: a clock is wrong");
    if (age >= max) {
      say("no the newest offsite snapshot " + id + " is " + Math.floor(age / 60) + " minutes old, not younger than " + max / 60);
    }
    say("ok the newest offsite snapshot is " + id + " from " + newest.time + " (" + Math.floor(age / 60) + " minutes old)");
  ') || verdict="no the snapshot list could not be read"

  case "$verdict" in
    ok\ *) echo "stop.sh: deleting all data; ${verdict#ok }." >&2 ;;
    *)
      refuse "refusing -v --delete-all-data: ${verdict#no }; back up offsite first (BACKUP_S3_URI or BACKUP_OFFSITE_TARGETS set, then \`trendgen backup\`, e.g. docker compose -f deploy/docker-compose.yml exec api node bin/trendgen.js backup) and run this again within the hour."
      ;;
  esac
elif [ "$delete_all_data" = true ]; then
  echo "stop.sh: --delete-all-data without -v changes nothing: stopping and keeping the data." >&2
fi

if docker compose version >/dev/null 2>&1; then
  exec docker compose -f "$compose_file" down "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -f "$compose_file" down "$@"
fi
echo "stop.sh: neither \`docker compose\` nor \`docker-compose\` is installed; install Docker Compose." >&2
exit 127
