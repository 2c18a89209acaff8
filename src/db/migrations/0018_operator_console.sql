-- Operator console sessions (/admin): the cookie's SHA-256, never the cookie itself. Unlogged: a login is
-- disposable (a crash of PostgreSQL logs everyone out), and no WAL stream, base backup or restore carries one.
create unlogged table admin_sessions (
  id_sha256 bytea primary key,
  csrf_token text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index admin_sessions_expiry on admin_sessions (expires_at);

-- Recovery-point lag per source and target, sampled once a minute by the scheduler for the console's timeline.
-- Unlogged for the reason wal_stream_status is: sampling must not feed the WAL stream it watches. Prometheus
-- keeps the long history; this keeps the last days for the page.
create unlogged table recovery_point_samples (
  taken_at timestamptz not null,
  source text not null,
  target text not null,
  lag_seconds double precision,
  primary key (source, target, taken_at)
);
create index recovery_point_samples_taken on recovery_point_samples (taken_at);
