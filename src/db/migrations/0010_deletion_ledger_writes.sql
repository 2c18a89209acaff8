-- Which user-data deletion has reached which backup target's deletion ledger (I3). A deletion with no row for a
-- target is still owed to it: the scheduler retries every minute until it is written, and the age of the oldest
-- owed deletion is that target's ledger lag (metrics, doctor).
create table deletion_ledger_writes (
  deletion_id bigint not null references user_deletions (id) on delete cascade,
  target text not null,
  written_at timestamptz not null default now(),
  primary key (deletion_id, target)
);

-- The last attempt to bring each target's ledger up to date, and why it failed.
create table deletion_ledger_attempts (
  target text primary key,
  attempted_at timestamptz not null,
  error text
);
