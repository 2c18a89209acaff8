import { randomBytes } from 'node:crypto';
import { withSql } from './postgres-admin.ts';

/**
 * Who loads a dump. A dump is SQL: loaded by a superuser (or a role that may run programs or read and write
 * the server's files), a crafted one could `COPY … TO PROGRAM` and run commands on the database host. So a
 * restore never loads with such a role: with the target URL's own role when it holds none of those powers
 * (objects are then owned by the service's role), otherwise with a login role made for this one restore,
 * a member of `trendgen_restored`, which owns every restored object and is never privileged.
 */

/** Owns what a restore by a superuser loads: no login, no superuser, no role or database creation. */
export const RESTORED_OWNER = 'trendgen_restored';

/** The roles whose members may run programs on, or read and write files of, the database server. */
const HOST_ROLES = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'];

export interface Loader {
  /** The URL pg_restore and the settling migration connect with: never a privileged role. */
  url: string;
  /** `pg_restore --role`: the role that owns what is loaded, when it is not the login role itself. */
  role: string | undefined;
  /** Grants the owner what loading needs in the (possibly just recreated) target database. */
  prepare(): Promise<void>;
  /** Drops the restore's login role (its objects go to the owner); a no-op for the target's own role. */
  release(): Promise<void>;
  /**
   * After a failed load into a database that was empty: drops what the loader created there, even what a
   * crafted dump committed by ending the load's transaction itself. Only a loader of our own can (what it
   * owns came from this load); with the target's own role it is a no-op, and says so by returning false.
   */
  discard(): Promise<boolean>;
}

export class PrivilegedLoaderError extends Error {
  override name = 'PrivilegedLoaderError';
}

/** Serialises the role changes of restores on one server (any fixed number, like the migration lock). */
const ROLES_LOCK = 7_401_552_410;

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

interface RoleFacts {
  name: string;
  superuser: boolean;
  /** Member of a role that reaches the host, or (before PostgreSQL 16) able to grant itself one. */
  hostPowers: string[];
}

async function roleFacts(url: string, role?: string): Promise<RoleFacts> {
  return await withSql(url, async (sql) => {
    const [row] = await sql<{ name: string; superuser: boolean; createrole: boolean; version: number }[]>`
      select rolname as name, rolsuper as superuser, rolcreaterole as createrole,
        current_setting('server_version_num')::int as version
      from pg_roles where rolname = coalesce(${role ?? null}::text, current_user)`;
    if (!row) throw new Error(`The role ${role} does not exist.`);
    const hostPowers: string[] = [];
    for (const host of HOST_ROLES) {
      const [member] = await sql<{ yes: boolean }[]>`
        select pg_has_role(${row.name}, ${host}, 'usage') as yes`;
      if (member?.yes) hostPowers.push(host);
    }
    // Before 16, CREATEROLE may grant itself membership of any non-superuser role, those above included.
    if (row.createrole && row.version < 160000) hostPowers.push('CREATEROLE');
    return { name: row.name, superuser: row.superuser, hostPowers };
  });
}

/** The loader for a restore into `targetUrl` (see above); refuses a privileged role it cannot step down from. */
export async function openLoader(targetUrl: string): Promise<Loader> {
  const me = await roleFacts(targetUrl);
  if (!me.superuser && me.hostPowers.length === 0) {
    const none = async () => {};
    return { url: targetUrl, role: undefined, prepare: none, release: none, discard: async () => false };
  }
  if (!me.superuser) {
    throw new PrivilegedLoaderError(
      `The role ${me.name} may reach the database host (${me.hostPowers.join(', ')}), so a dump loaded as it could run programs there: restore with a role that owns the target database and has none of these, or with a superuser (trendgen then loads as its own unprivileged role).`,
    );
  }
  await ensureOwnerRole(targetUrl);
  const login = `trendgen_load_${randomBytes(6).toString('hex')}`;
  const password = randomBytes(24).toString('hex');
  await withSql(targetUrl, async (sql) => {
    const until = new Date(Date.now() + 24 * 3600_000).toISOString();
    // DDL takes no parameters: the name and password are hex made here, the time an ISO string.
    await sql.unsafe(
      `create role ${login} login password '${password}' valid until '${until}' nosuperuser nocreatedb nocreaterole noreplication nobypassrls in role ${RESTORED_OWNER}`,
    );
  });
  const url = new URL(targetUrl);
  url.username = login;
  url.password = password;
  try {
    await withSql(url.toString(), (sql) => sql`select 1`);
  } catch (error) {
    await dropLogin(targetUrl, login);
    throw new PrivilegedLoaderError(
      `trendgen loads dumps as a role of its own that cannot reach the database host, and it could not log in (${(error as Error).message}): allow password logins for the roles trendgen_load_* in pg_hba.conf, or restore as a role that owns the target database and is not a superuser.`,
    );
  }
  return {
    url: url.toString(),
    role: RESTORED_OWNER,
    prepare: () => grantOwner(targetUrl),
    release: () => dropLogin(targetUrl, login),
    discard: async () => {
      // Per database: the owner's objects elsewhere are other restores'. Its grants here go too.
      await withSql(targetUrl, (sql) => sql.unsafe(`drop owned by ${login}, ${RESTORED_OWNER} cascade`));
      return true;
    },
  };
}

/** Creates the owner role once per server and keeps it powerless, whoever changed it since. */
async function ensureOwnerRole(adminUrl: string): Promise<void> {
  await withSql(adminUrl, (sql) =>
    // Restores on one server run at once: changing the same role row concurrently is an error, so queue here.
    sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${ROLES_LOCK})`;
      const [owner] = await tx<{ ok: boolean }[]>`
        select not (rolcanlogin or rolsuper or rolcreatedb or rolcreaterole or rolreplication or rolbypassrls) as ok
        from pg_roles where rolname = ${RESTORED_OWNER}`;
      if (!owner) await tx.unsafe(`create role ${RESTORED_OWNER} nologin`);
      else if (!owner.ok) {
        await tx.unsafe(
          `alter role ${RESTORED_OWNER} nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls`,
        );
      }
      // A killed restore could not drop its login: once expired, it goes (or at least can never log in).
      const stale = await tx<{ name: string }[]>`
        select rolname as name from pg_roles where rolname like 'trendgen\_load\_%' and rolvaliduntil < now()`;
      for (const { name } of stale) {
        await tx
          .savepoint((sp) => sp.unsafe(`drop role ${quoteIdent(name)}`))
          .catch(() =>
            tx.savepoint((sp) => sp.unsafe(`alter role ${quoteIdent(name)} nologin`)).catch(() => {}),
          );
      }
    }),
  );
  const owner = await roleFacts(adminUrl, RESTORED_OWNER);
  if (owner.superuser || owner.hostPowers.length) {
    throw new PrivilegedLoaderError(
      `The role ${RESTORED_OWNER} has been given ${owner.hostPowers.join(', ') || 'superuser'}: revoke it (REVOKE … FROM ${RESTORED_OWNER}), since restored dumps are loaded as that role.`,
    );
  }
}

async function grantOwner(adminUrl: string): Promise<void> {
  await withSql(adminUrl, async (sql) => {
    const [db] = await sql<{ name: string }[]>`select current_database() as name`;
    await sql.unsafe(
      `grant connect, create, temporary on database ${quoteIdent(db!.name)} to ${RESTORED_OWNER}`,
    );
    await sql.unsafe(`grant usage, create on schema public to ${RESTORED_OWNER}`);
  });
}

async function dropLogin(adminUrl: string, login: string): Promise<void> {
  await withSql(adminUrl, async (sql) => {
    try {
      await sql.unsafe(`reassign owned by ${login} to ${RESTORED_OWNER}`);
      await sql.unsafe(`drop owned by ${login}`);
      await sql.unsafe(`drop role ${login}`);
    } catch {
      // Whatever kept it (a session still open): it can at least never log in again.
      await sql.unsafe(`alter role ${login} nologin password null`).catch(() => {});
    }
  });
}
