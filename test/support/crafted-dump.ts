import { openDatabase } from '../../src/db/connection.ts';

/**
 * A dump whose check constraint runs `COPY … TO PROGRAM` on every row it loads: the function does nothing in the
 * database it was made in (so the backup is quiet) and runs the program in any other (the restore's).
 */
export async function poisonDatabase(url: string, marker: string): Promise<void> {
  const sql = openDatabase(url, { max: 1 });
  try {
    const [db] = await sql<{ name: string }[]>`select current_database() as name`;
    await sql.unsafe(`
      create function public.harmless(v int) returns int language plpgsql as $f$
      begin
        if current_database() <> '${db!.name}' then
          execute format('copy (select 1) to program %L', 'touch ${marker}');
        end if;
        return v;
      end $f$;
      create table public.poisoned (v int check (public.harmless(v) = v));
      insert into public.poisoned values (1), (2);`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
