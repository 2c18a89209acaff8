-- Objects: content-addressed bytes in the object store. A row exists only after its bytes are durable (I2);
-- deleting sets a tombstone, the bytes go later (I3).
create table objects (
  key text primary key,
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  size bigint not null check (size >= 0),
  content_type text not null,
  kind text not null,
  created_at timestamptz not null default now(),
  deleted_at timestamptz
);
create index objects_sha256 on objects (sha256);
create index objects_kind on objects (kind, created_at);

-- Prompts in use: the last valid version of each prompt file, and the state of the file itself.
create table prompts (
  name text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  current_version integer,
  file_state text not null default 'ok' check (file_state in ('ok', 'invalid', 'deleted')),
  file_error jsonb,
  file_sha256 text,
  updated_at timestamptz not null default now()
);

-- Every distinct content a prompt has had, in order (I5). Rows are never changed or removed.
create table prompt_versions (
  name text not null references prompts (name),
  version integer not null check (version > 0),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  content text not null,
  origin text not null check (origin in ('file', 'api', 'restore', 'import')),
  created_at timestamptz not null default now(),
  primary key (name, version)
);

-- What happened to a prompt file besides new valid versions: invalid contents (kept, so nothing a person
-- wrote is lost), deletions, and the file coming back.
create table prompt_events (
  id bigserial primary key,
  name text not null,
  event text not null check (event in ('invalid', 'deleted', 'recovered')),
  sha256 text,
  size bigint,
  content text,
  error jsonb,
  created_at timestamptz not null default now()
);
create index prompt_events_name on prompt_events (name, id);

create function refuse_history_change() returns trigger language plpgsql as $$
begin
  raise exception 'prompt history is append-only: % on % refused', tg_op, tg_table_name;
end $$;
create trigger prompt_versions_append_only before update or delete on prompt_versions
  for each row execute function refuse_history_change();
create trigger prompt_events_append_only before update or delete on prompt_events
  for each row execute function refuse_history_change();

create table trends (
  slug text primary key check (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
  title text not null check (length(title) between 1 and 200),
  description text not null default '',
  emoji text,
  prompt_name text not null references prompts (name),
  params jsonb not null default '{}'::jsonb,
  example_key text references objects (key),
  status text not null default 'active' check (status in ('active', 'hidden', 'archived')),
  position integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index trends_order on trends (position, slug);
