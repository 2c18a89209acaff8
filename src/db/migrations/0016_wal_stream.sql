-- Continuous protection's progress per backup target, written by `trendgen protect` about once a second and
-- read by status, /readyz, doctor and metrics. Unlogged: it writes no WAL (so watching the stream does not
-- feed it) and a restored database starts it empty, which is the truth after a restore.
create unlogged table wal_stream_status (
  target text primary key,
  timeline integer,
  shipped_lsn pg_lsn,
  recoverable_until timestamptz,
  lag_seconds double precision,
  receiver text not null,
  error text,
  updated_at timestamptz not null default now()
);
