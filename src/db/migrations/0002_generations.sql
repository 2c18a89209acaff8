-- A generation is durable here before it is queued in Redis (I4): the queue can always be rebuilt from it.
create table generations (
  id uuid primary key default gen_random_uuid(),
  user_id text not null check (length(user_id) between 1 and 200),
  trend_slug text not null references trends (slug),
  prompt_name text not null,
  prompt_version integer not null,
  params jsonb not null,
  variants integer not null check (variants between 1 and 4),
  photo_key text not null references objects (key),
  status text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed')),
  attempts integer not null default 0,
  lease_owner text,
  lease_expires_at timestamptz,
  error text,
  idempotency_key text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  foreign key (prompt_name, prompt_version) references prompt_versions (name, version),
  unique (user_id, idempotency_key)
);
create index generations_user on generations (user_id, created_at desc);
create index generations_open on generations (status, lease_expires_at) where status in ('queued', 'running');

-- One row per variant, written in the same transaction that finishes the generation under its lease,
-- so a job that ran twice can never finish twice or leave duplicate outputs.
create table generation_outputs (
  generation_id uuid not null references generations (id),
  variant integer not null check (variant >= 0),
  key text not null references objects (key),
  preview_key text not null references objects (key),
  primary key (generation_id, variant)
);

-- A user's request to delete their data (I3): recorded durably, re-applied after any restore.
create table user_deletions (
  id bigserial primary key,
  user_id text not null,
  requested_at timestamptz not null default now(),
  generations integer not null,
  objects integer not null
);
create index user_deletions_user on user_deletions (user_id);

-- Counters shared by every process (workers, scheduler, API), read by /metrics.
create table ops_counters (
  name text not null,
  label text not null default '',
  value bigint not null default 0,
  primary key (name, label)
);
