-- Every restore drill: the proof that a backup can be restored, and how long it took (I10).
create table drill_runs (
  id bigserial primary key,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  status text not null default 'running' check (status in ('running', 'passed', 'failed')),
  snapshot_id text,
  target text,
  recovery_seconds double precision,
  reason text,
  checks jsonb not null default '[]'::jsonb
);
create index drill_runs_started on drill_runs (started_at desc);
