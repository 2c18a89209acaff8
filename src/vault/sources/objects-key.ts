/** What an object's key says of its bytes; small, so the object threads load nothing else of the vault for it. */

/** The SHA-256 an object's key names it by (`…/<sha256>.<ext>`), when it does. */
export function hashInKey(key: string): string | undefined {
  return /([0-9a-f]{64})\.[a-z0-9]+$/.exec(key)?.[1];
}

/** Why an object whose bytes do not match its key is not restored (the same words on either thread). */
export const NOT_ITS_HASH = 'its bytes do not hash to the SHA-256 in its name';
