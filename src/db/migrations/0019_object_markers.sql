-- I8 for a restore of the newest moment: every object row that becomes live marks its transaction in the WAL
-- with a transactional logical message naming its key. A restore then replays up to the first commit, after
-- the objects' watermark, that made live an object no backup holds, rather than stopping at the watermark itself,
-- so the database's writes that made no object come back to the end of the WAL. Created only where the role may
-- emit such messages (a superuser: the embedded server, Compose); elsewhere a restore stops at the watermark.
do $$
begin
  if has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'execute') then
    create function trendgen_object_marker() returns trigger language plpgsql as $marker$
    begin
      perform pg_logical_emit_message(true, 'trendgen-object', new.key);
      return null;
    -- A database restored where the role may not emit them (a managed service) still takes uploads.
    exception when insufficient_privilege then
      return null;
    end
    $marker$;
    create trigger trendgen_object_marker after insert or update of deleted_at, purged_at on objects
      for each row when (new.deleted_at is null) execute function trendgen_object_marker();
  end if;
end
$$;
