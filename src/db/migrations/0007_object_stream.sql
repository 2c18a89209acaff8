-- Objects on their way to the backup targets (continuous protection, I11). An entry is added in the same
-- statement as its `objects` row, so a committed row always has one until every target holds the object;
-- `done` names the targets that hold it, so a dead target never holds back another.
create table object_stream_queue (
  id bigserial primary key,
  key text not null,
  -- The database's own clock at insert, before the commit: the objects' watermark stays below it.
  enqueued_at timestamptz not null default clock_timestamp(),
  done text[] not null default '{}'
);
create index object_stream_queue_enqueued on object_stream_queue (enqueued_at);

-- The targets the queue has been filled for (a target added later gets every live object queued for it),
-- and the streamer's last failure on each while it lasts (doctor and status report it).
create table object_stream_targets (
  target text primary key,
  since timestamptz not null default clock_timestamp(),
  last_error text,
  failing_since timestamptz
);

-- Wakes the streamer when entries commit (notifications are delivered at commit, never before). PostgreSQL
-- serialises the commits of transactions that notify (one lock on its notification queue), so uploads commit
-- one after another; each holds it only for its own commit's WAL flush (and a synchronous standby's answer).
create function object_stream_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('object_stream', '');
  return null;
end $$;
create trigger object_stream_queue_notify after insert on object_stream_queue
  for each statement execute function object_stream_notify();
