-- The collector (I3): a tombstoned object's bytes are removed once no restorable state needs them, and the
-- row says so (purged_at), so a restore never writes those bytes back and a re-upload writes them again.
alter table objects add column purged_at timestamptz;
alter table objects add constraint objects_purged_after_deleted check (purged_at is null or deleted_at is not null);
create index objects_awaiting_purge on objects (deleted_at) where deleted_at is not null and purged_at is null;

-- What the collector removed since the beginning, by reason, kept in the database so every replica's /metrics
-- reports the same counters; written in the same transaction as each removal is recorded.
create table object_purge_totals (
  reason text primary key check (reason in ('tombstoned', 'orphan', 'leftover')),
  items bigint not null default 0,
  bytes bigint not null default 0
);

-- When this database was put back from a backup. Blobs written before the newest restore may belong to the
-- timeline the restore replaced (a point-in-time restore could go back to it), so the collector does not take
-- them for orphans until that restore has left the point-in-time window.
create table object_store_restores (
  id bigserial primary key,
  restored_at timestamptz not null default now()
);
