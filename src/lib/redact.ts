import { SECRET_PARAMS } from './connection-url.ts';

/**
 * Secrets this process knows (tokens, passwords from its configuration), so that free text — a driver's error
 * quoting its connection string, a tool's stderr — can be scrubbed of them however they were written.
 */
const known = new Set<string>();

/** Remembers a secret value; short values are ignored, since replacing them would mangle ordinary words. */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < 4) return;
  known.add(value);
  known.add(encodeURIComponent(value));
  known.add(encodeURIComponent(value).replaceAll('%20', '+'));
}

const REDACTED = '[redacted]';

/**
 * Removes credentials from free text: every registered secret in any of its encodings, the password of any
 * `scheme://user:password@` URL, and the values of secret query parameters (`?password=`, `&token=`…).
 */
export function scrubText(text: string): string {
  let out = text;
  // Longest first: a secret that contains another is replaced whole.
  for (const secret of [...known].sort((a, b) => b.length - a.length)) out = out.replaceAll(secret, REDACTED);
  out = out.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi, `$1:${REDACTED}@`);
  return out.replace(/([?&;]([A-Za-z0-9_.-]+)=)([^&\s#"']*)/g, (all, prefix: string, key: string) =>
    SECRET_PARAMS.has(key.toLowerCase()) ? `${prefix}${REDACTED}` : all,
  );
}

/** A request's path for logs and messages: the query dropped, so a `?token=` a client sent is never written. */
export function pathOnly(url: string): string {
  const question = url.indexOf('?');
  return question < 0 ? url : url.slice(0, question);
}
