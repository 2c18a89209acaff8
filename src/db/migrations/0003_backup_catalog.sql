-- Every backup run, its outcome per target (I10: failures are recorded, not only logged).
create table backup_runs (
  id bigserial primary key,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  status text not null default 'running' check (status in ('running', 'succeeded', 'partial', 'failed')),
  snapshot_id text,
  tags text[] not null default '{}',
  targets jsonb not null default '[]'::jsonb,
  bytes_added bigint not null default 0,
  error text
);
create index backup_runs_started on backup_runs (started_at desc);
