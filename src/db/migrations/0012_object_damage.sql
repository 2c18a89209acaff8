-- Objects whose stored bytes no longer hash to their SHA-256 (bit rot, a bad disk, a truncating copy), found by
-- a read, the scrub, a backup or a re-upload; kept until repaired, then kept as a record of what happened.
create table object_damage (
  key text primary key,
  found_by text not null check (found_by in ('read', 'scrub', 'backup', 'upload')),
  found_at timestamptz not null default now(),
  detections integer not null default 1 check (detections > 0),
  last_found_at timestamptz not null default now(),
  repaired_at timestamptz,
  repaired_by text check (repaired_by in ('upload', 'vault'))
);
