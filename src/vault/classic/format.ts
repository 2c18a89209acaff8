import { lstat, mkdir, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * The classic backup format, as `scripts/backup.sh` made it before the vault:
 *
 * ```
 * trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz      gzip'd tar holding one folder of the same name:
 *   trend_generator_backup_YYYYMMDD_HHMMSS/
 *     db.sql.gz                                      plain SQL (pg_dump, no -C), gzip'd
 *     data.tar.gz                                    gzip'd tar, paths relative to the project root:
 *       prompts/<name>.yaml
 *       data/trend_examples/…
 *       data/generated_images/…
 * ```
 *
 * and its manual restore, run in the project root against an empty database:
 *
 * ```
 * tar -xzf trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz
 * gunzip -c trend_generator_backup_YYYYMMDD_HHMMSS/db.sql.gz | psql -U trends -d trends
 * tar -xzf trend_generator_backup_YYYYMMDD_HHMMSS/data.tar.gz -C .
 * ```
 *
 * Mapping from a vault snapshot (export): the prompts tree becomes `prompts/`; the object store, a folder
 * of `<kind>/<aa>/<sha256>.<ext>`, is flattened into one folder per classic location, the file names kept
 * as they are: kind `example` → `data/trend_examples/<sha256>.<ext>`; `photo`, `output`, `preview`,
 * `receipt` (and any kind added later, so nothing is left out) → `data/generated_images/<sha256>.<ext>`.
 * Names are content hashes, so two kinds holding the same name hold the same bytes and one copy is kept.
 * An imported classic snapshot (trees `classic_sql`, `classic_data`) is exported as it came in.
 *
 * The timestamp in the name is UTC: exports write the snapshot's time in UTC, and imports read it as UTC.
 * (The old script used the server's local time, which the name does not record.)
 */

export const CLASSIC_PREFIX = 'trend_generator_backup_';
const NAME_PATTERN = /^trend_generator_backup_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/;

export const SQL_MEMBER = 'db.sql.gz';
export const DATA_MEMBER = 'data.tar.gz';
export const PROMPTS_FOLDER = 'prompts';
export const EXAMPLES_FOLDER = 'data/trend_examples';
export const GENERATED_FOLDER = 'data/generated_images';

/** Object kinds that go to data/trend_examples; every other kind goes to data/generated_images. */
const EXAMPLE_KINDS = new Set(['example']);

/** `trend_generator_backup_YYYYMMDD_HHMMSS` for a time, in UTC. */
export function classicName(time: Date): string {
  if (Number.isNaN(time.getTime())) throw new RangeError('Not a valid time for a classic backup name.');
  const stamp = time
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '_');
  return `${CLASSIC_PREFIX}${stamp}`;
}

/** The time a classic name (folder, or file with `.tar.gz`) records, read as UTC; undefined if not one. */
export function parseClassicName(name: string): Date | undefined {
  const match = NAME_PATTERN.exec(name.replace(/\.tar\.gz$/, ''));
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const time = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 20250231 over into March; a name that does not round-trip is not a real time.
  return classicName(time) === name.replace(/\.tar\.gz$/, '') ? time : undefined;
}

export function classicFolderOf(kind: string): string {
  return EXAMPLE_KINDS.has(kind) ? EXAMPLES_FOLDER : GENERATED_FOLDER;
}

/**
 * Moves every file of a restored object store (`<kind>/…/<name>`) into its classic folder under
 * projectRoot, flattened. Renames only: the restored copy is on the same filesystem. Returns the count.
 */
export async function flattenObjects(objectsDir: string, projectRoot: string): Promise<number> {
  let moved = 0;
  for (const kind of await readdir(objectsDir, { withFileTypes: true })) {
    const folder = path.join(projectRoot, classicFolderOf(kind.name));
    await mkdir(folder, { recursive: true });
    const source = path.join(objectsDir, kind.name);
    const files = kind.isDirectory() ? await filesUnder(source) : [source];
    for (const file of files) {
      const target = path.join(folder, path.basename(file));
      if (await exists(target)) await unlink(file);
      else {
        await rename(file, target);
        moved++;
      }
    }
  }
  return moved;
}

/** Every non-directory under dir, links not followed. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(abs)));
    else out.push(abs);
  }
  return out;
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
