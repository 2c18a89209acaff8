import { createHash, randomBytes } from 'node:crypto';
import type { Sql } from '../db/connection.ts';

/** How long a console login lasts; after it, the token is asked again. */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;
export const SESSION_COOKIE = 'trendgen_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface AdminSession {
  csrfToken: string;
  expiresAt: Date;
}

const digest = (id: string) => createHash('sha256').update(id).digest();

/**
 * A new console session: the cookie value goes to the browser only, PostgreSQL keeps its SHA-256 (a read of
 * the table gives no login). Expired sessions are cleared on the way.
 */
export async function openSession(sql: Sql): Promise<AdminSession & { id: string }> {
  const id = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_TTL_SECONDS * 1000);
  await sql`delete from admin_sessions where expires_at < now()`;
  await sql`insert into admin_sessions (id_sha256, csrf_token, expires_at)
    values (${digest(id)}, ${csrfToken}, ${expiresAt})`;
  return { id, csrfToken, expiresAt };
}

/** The live session a cookie names; undefined when it is unknown, logged out or expired. */
export async function findSession(sql: Sql, id: string): Promise<AdminSession | undefined> {
  if (!/^[\w-]{43}$/.test(id)) return undefined;
  const [row] = await sql<{ csrfToken: string; expiresAt: Date }[]>`
    select csrf_token as "csrfToken", expires_at as "expiresAt" from admin_sessions
    where id_sha256 = ${digest(id)} and expires_at > now()`;
  return row;
}

export async function closeSession(sql: Sql, id: string): Promise<void> {
  await sql`delete from admin_sessions where id_sha256 = ${digest(id)}`;
}
