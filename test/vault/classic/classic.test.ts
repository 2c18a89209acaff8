import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBinary } from '../../../src/embedded/binaries.ts';
import { exportClassic } from '../../../src/vault/classic/export.ts';
import {
  importClassic,
  NotClassicBackupError,
  restoreClassicSnapshot,
} from '../../../src/vault/classic/import.ts';
import { UnsafeArchiveError } from '../../../src/vault/classic/safe-extract.ts';
import { libpqConnection } from '../../../src/vault/sources/postgres-client.ts';
import { tableFacts } from '../../../src/vault/sources/postgres-facts.ts';
import { type TestDatabase, testDatabases } from '../../support/database.ts';
import { tempDir } from '../../support/temp.ts';
import { type TempRepo, tempRepo } from '../repository/helpers.ts';

const CLASSIC = 'trend_generator_backup_20250102_030405';
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Runs a shell script; with a database, its URL (no password) is $DB and the password is in PGPASSWORD. */
function sh(script: string, vars: Record<string, string>, db?: TestDatabase): void {
  const conn = db ? libpqConnection(db.url) : undefined;
  const env = { ...process.env, ...conn?.env, ...(conn ? { DB: conn.dbname } : {}), ...vars };
  execFileSync('sh', ['-c', `set -eu\n${script}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** path → sha256 of every regular file under dir. */
async function digests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const abs = path.join(entry.parentPath, entry.name);
    if (entry.isFile()) out[path.relative(dir, abs)] = sha(await readFile(abs));
  }
  return out;
}

/** Rows a plain-text dump must carry exactly: tabs, newlines, backslashes, non-ASCII, bytea, jsonb. */
async function seed(
  db: TestDatabase,
  objectKeys: { key: string; sha: string; size: number; kind: string }[],
) {
  const { sql } = db;
  for (const o of objectKeys) {
    await sql`insert into objects (key, sha256, size, content_type, kind)
      values (${o.key}, ${o.sha}, ${o.size}, 'image/jpeg', ${o.kind})`;
  }
  await sql`insert into prompts (name, current_version) values ('ghibli', 1)`;
  await sql`insert into prompt_versions (name, version, sha256, content, origin)
    values ('ghibli', 1, ${'a'.repeat(64)}, ${'template: "a\tb\\c\nd ünï"\n'}, 'file')`;
  await sql`insert into trends (slug, title, prompt_name, example_key)
    values ('ghibli', 'Ghibli ✨', 'ghibli', ${objectKeys[0]!.key})`;
  await sql`create table classic_extra (id serial primary key, t text, b bytea, j jsonb)`;
  await sql`insert into classic_extra (t, b, j)
    select 'row ' || g || E'\t tab \\ backslash \n newline ünï \\.', decode(md5(g::text), 'hex'),
      jsonb_build_object('g', g) from generate_series(1, 3000) g`;
}

let temp: ReturnType<typeof tempDir>;
let source: TestDatabase;
const databases = testDatabases();
/** A classic project root: prompts/, data/trend_examples/, data/generated_images/. */
let project: string;
/** The vault's object store layout: <kind>/<aa>/<sha256>.<ext>. */
let objectsDir: string;

beforeAll(async () => {
  temp = tempDir('classic');
  project = path.join(temp.dir, 'project');
  objectsDir = path.join(temp.dir, 'objects');
  await mkdir(path.join(project, 'prompts'), { recursive: true });
  await mkdir(path.join(project, 'data/trend_examples'), { recursive: true });
  await mkdir(path.join(project, 'data/generated_images/nested'), { recursive: true });
  await writeFile(
    path.join(project, 'prompts/ghibli.yaml'),
    'name: ghibli\ntemplate: "{photo} in Ghibli style"\n',
  );
  await writeFile(path.join(project, 'prompts/empty.yaml'), '');
  const objects: { key: string; sha: string; size: number; kind: string }[] = [];
  const kinds = ['example', 'example', 'photo', 'output', 'preview', 'receipt'];
  for (const [i, kind] of kinds.entries()) {
    // Images carry their signature (stored as they are in data.tar.gz); receipts are JSON (deflated).
    const bytes =
      kind === 'receipt'
        ? Buffer.from(JSON.stringify({ receipt: i, lines: Array(500).fill('line') }))
        : Buffer.concat([JPEG, randomBytes(20_000 + i * 30_000)]);
    const hash = sha(bytes);
    const ext = kind === 'receipt' ? 'json' : 'jpg';
    objects.push({ key: `${kind}/${hash.slice(0, 2)}/${hash}.${ext}`, sha: hash, size: bytes.length, kind });
    await mkdir(path.join(objectsDir, kind, hash.slice(0, 2)), { recursive: true });
    await writeFile(path.join(objectsDir, kind, hash.slice(0, 2), `${hash}.${ext}`), bytes);
    const folder = kind === 'example' ? 'data/trend_examples' : 'data/generated_images';
    await writeFile(path.join(project, folder, `${hash}.${ext}`), bytes);
  }
  // The same content under two kinds has the same name: the export keeps one copy.
  const twin = objects.find((o) => o.kind === 'output')!;
  await mkdir(path.join(objectsDir, 'preview', twin.sha.slice(0, 2)), { recursive: true });
  await writeFile(
    path.join(objectsDir, 'preview', twin.key.slice('output/'.length)),
    await readFile(path.join(objectsDir, twin.key)),
  );
  await writeFile(path.join(project, 'data/generated_images/nested/old.png'), randomBytes(1000));
  source = await databases.create();
  await seed(source, objects);
});

afterAll(async () => {
  await databases.dropAll();
  temp?.remove();
});

function emptyDatabase(): Promise<TestDatabase> {
  return databases.create({ migrate: false });
}

/** What scripts/backup.sh did before the vault: pg_dump | gzip -9, a tar of the folders, a tar around both. */
function classicArchive(backups: string, name = CLASSIC): string {
  sh(
    `cd "$PROJECT"
mkdir -p "$BACKUPS/$NAME"
"$PG_DUMP" -d "$DB" | gzip -9 > "$BACKUPS/$NAME/db.sql.gz"
tar -czf "$BACKUPS/$NAME/data.tar.gz" prompts data/trend_examples data/generated_images
tar -czf "$BACKUPS/$NAME.tar.gz" -C "$BACKUPS" "$NAME"
rm -rf "$BACKUPS/$NAME"`,
    { PROJECT: project, BACKUPS: backups, NAME: name, PG_DUMP: findPostgresBinary('pg_dump') },
    source,
  );
  return path.join(backups, `${name}.tar.gz`);
}

describe('classic backups', () => {
  let t: TempRepo;
  beforeAll(async () => {
    t = await tempRepo();
  });
  afterAll(() => t?.remove());

  it('imports an archive made the classic way and restores it: rows and files identical', async () => {
    const archive = classicArchive(path.join(temp.dir, 'backups'));
    const id = await importClassic(t.repo, archive, { tags: ['legacy'] });
    const snapshot = await t.repo.loadSnapshot(id);
    expect(snapshot.time).toBe('2025-01-02T03:04:05.000Z');
    expect(snapshot.tags).toEqual(['imported', 'legacy']);
    expect(Object.keys(snapshot.trees).sort()).toEqual(['classic_data', 'classic_sql']);
    const projectFiles = await digests(project);
    expect((snapshot['facts'] as { classic: { files: number } }).classic.files).toBe(
      Object.keys(projectFiles).length,
    );

    const target = await emptyDatabase();
    const toDir = path.join(temp.dir, 'restored-import');
    const result = await restoreClassicSnapshot(t.repo, id, { databaseUrl: target.url, toDir });
    expect(await tableFacts(target.url)).toEqual(await tableFacts(source.url));
    expect(await digests(toDir)).toEqual(projectFiles);
    expect(result.files).toBe(Object.keys(projectFiles).length);

    // A renamed archive still imports (its folder is found by its form); the time comes from the file name.
    const renamed = path.join(temp.dir, 'backups', 'trend_generator_backup_20250102_030406.tar.gz');
    await copyFile(archive, renamed);
    expect((await t.repo.loadSnapshot(await importClassic(t.repo, renamed))).time).toBe(
      '2025-01-02T03:04:06.000Z',
    );

    // A database that already has tables is refused before psql runs.
    await expect(restoreClassicSnapshot(t.repo, id, { databaseUrl: target.url })).rejects.toThrow(
      /is not empty/,
    );
    // And the imported snapshot exports again, unchanged.
    const again = await exportClassic(t.repo, id, path.join(temp.dir, 'reexport') + path.sep);
    expect(path.basename(again.file)).toBe(`${CLASSIC}.tar.gz`);
    const unpacked = path.join(temp.dir, 'reexport-unpacked');
    await mkdir(unpacked);
    sh('cd "$DIR" && tar -xzf "$FILE" && mkdir root && tar -xzf "$NAME/data.tar.gz" -C root', {
      DIR: unpacked,
      FILE: again.file,
      NAME: CLASSIC,
    });
    expect(await digests(path.join(unpacked, 'root'))).toEqual(projectFiles);
  });

  it('exports a vault snapshot that the documented manual steps restore: same rows, same bytes', async () => {
    const dumpDir = path.join(temp.dir, 'pg-dump');
    sh('"$PG_DUMP" -d "$DB" -Fd -f "$OUT"', { PG_DUMP: findPostgresBinary('pg_dump'), OUT: dumpDir }, source);
    const trees = {
      postgres: (await t.repo.storeDirectory(dumpDir)).treeId,
      prompts: (await t.repo.storeDirectory(path.join(project, 'prompts'))).treeId,
      objects: (await t.repo.storeDirectory(objectsDir)).treeId,
    };
    const id = await t.repo.saveSnapshot({
      time: '2025-03-04T05:06:07.890Z',
      host: 'test',
      tags: [],
      trees,
      facts: {},
    });
    const outDir = path.join(temp.dir, 'exports');
    await mkdir(outDir);
    const result = await exportClassic(t.repo, id, outDir);
    const name = 'trend_generator_backup_20250304_050607';
    expect(result.file).toBe(path.join(outDir, `${name}.tar.gz`));
    expect(await readdir(outDir)).toEqual([`${name}.tar.gz`]);
    expect(
      execFileSync('tar', ['-tzf', result.file], { encoding: 'utf8' }).split('\n').filter(Boolean).sort(),
    ).toEqual([`${name}/`, `${name}/data.tar.gz`, `${name}/db.sql.gz`]);

    // The manual restore, word for word, in a fresh project root against an empty database.
    const target = await emptyDatabase();
    const root = path.join(temp.dir, 'manual-root');
    await mkdir(root);
    sh(
      `cd "$ROOT"
tar -xzf "$ARCHIVE"
gunzip -c "$NAME/db.sql.gz" | "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null
tar -xzf "$NAME/data.tar.gz" -C .
rm -rf "$NAME"`,
      { ROOT: root, ARCHIVE: result.file, NAME: name, PSQL: findPostgresBinary('psql') },
      target,
    );
    const want = await tableFacts(source.url);
    const got = await tableFacts(target.url);
    expect(Object.fromEntries(Object.entries(got).map(([table, f]) => [table, f.rows]))).toEqual(
      Object.fromEntries(Object.entries(want).map(([table, f]) => [table, f.rows])),
    );
    expect(got).toEqual(want);

    const expected: Record<string, string> = {};
    for (const [file, digest] of Object.entries(await digests(path.join(project, 'prompts')))) {
      expected[`prompts/${file}`] = digest;
    }
    for (const [file, digest] of Object.entries(await digests(objectsDir))) {
      const folder = file.startsWith('example/') ? 'data/trend_examples' : 'data/generated_images';
      expected[`${folder}/${path.basename(file)}`] = digest;
    }
    expect(await digests(root)).toEqual(expected);
    expect(result.files).toBe(Object.keys(expected).length);
  });

  it('refuses archives that are not classic backups or carry hostile members, and saves no snapshot', async () => {
    const dir = path.join(temp.dir, 'refusals');
    await mkdir(dir);
    const before = await t.repo.listSnapshots();

    const renamed = path.join(dir, 'backup-latest.tar.gz');
    await writeFile(renamed, gzipSync(Buffer.alloc(1024)));
    await expect(importClassic(t.repo, renamed)).rejects.toThrow(
      'backup-latest.tar.gz is not a classic backup: its name does not have the form',
    );

    const name = 'trend_generator_backup_20250105_000000';
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, 'db.sql.gz'), gzipSync('select 1;\n'));
    sh('tar -czf "$DIR/$NAME.tar.gz" -C "$DIR" "$NAME"', { DIR: dir, NAME: name });
    const incomplete = importClassic(t.repo, path.join(dir, `${name}.tar.gz`));
    await expect(incomplete).rejects.toBeInstanceOf(NotClassicBackupError);
    await expect(incomplete).rejects.toThrow(`should hold ${name}/db.sql.gz and ${name}/data.tar.gz`);

    // A well-formed outer archive whose data.tar.gz tries to climb out of the scratch folder.
    const evil = new Header({ path: '../../evil', type: 'File', size: 4, mode: 0o644, mtime: new Date() });
    evil.encode();
    const body = Buffer.concat([evil.block!, Buffer.from('evil'), Buffer.alloc(508 + 1024)]);
    await writeFile(path.join(dir, name, 'data.tar.gz'), gzipSync(body));
    sh('tar -czf "$DIR/$NAME.tar.gz" -C "$DIR" "$NAME"', { DIR: dir, NAME: name });
    const hostile = importClassic(t.repo, path.join(dir, `${name}.tar.gz`), { workDir: dir });
    await expect(hostile).rejects.toBeInstanceOf(UnsafeArchiveError);
    await expect(hostile).rejects.toThrow('its member "../../evil"');
    expect((await readdir(dir)).sort()).toEqual([name, `${name}.tar.gz`, 'backup-latest.tar.gz'].sort());
    expect(await t.repo.listSnapshots()).toEqual(before);
  });
});
