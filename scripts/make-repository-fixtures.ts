/**
 * Makes the repository-format fixtures: one small vault repository per format the release in a given checkout
 * writes, so that a test can read them with whatever code is current (test/vault/repository/format-fixtures.test.ts).
 * The repository bytes are written by the checkout's own code (imported from it at run time), never by hand.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  cp,
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  rmdir,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const USAGE = `Usage: npx tsx scripts/make-repository-fixtures.ts <release-checkout> <out-dir>

Writes vault repositories with the code of <release-checkout> (a git checkout of a trendgen release made
before repository format 3, e.g. a worktree: git worktree add /tmp/release-2ccede3 2ccede3), so that the
current code can be tested against repositories the release wrote. Under <out-dir> it makes:

  v1-encrypted/repo            an encrypted repository (format 1), password ${JSON.stringify('fixture-password')}
  v2-authenticated/repo        an unencrypted repository (format 2) whose records are authenticated with the
                               32-byte key sha256(${JSON.stringify('trendgen-fixture-auth-key')})
  <name>/expected.json         every file, directory and symlink of the snapshot (path, size, mode, mtime, sha256,
                               chunk count), the snapshot id and the repository's config version
  README.md                    what these are, the commit that made them and the command that remakes them

Each repository holds one snapshot (source "files") of the same small tree, stored with repo.storeDirectory and
repo.saveSnapshot as a backup does: an empty file, a 100-byte text file, a 3 MiB pseudo-random file (fixed seed,
several chunks at the default chunker sizes), a file of mode 0600, a nested directory with a compressible file
and a symlink. The content is fixed; repository ids, keys, nonces and the chunker seed are random, so the
repository bytes differ from run to run. Existing <out-dir>/v1-encrypted, <out-dir>/v2-authenticated and
<out-dir>/README.md are replaced; nothing else in <out-dir> is touched.
`;

const PASSWORD = 'fixture-password';
const AUTH_KEY = createHash('sha256').update('trendgen-fixture-auth-key').digest();

/** Every entry of the source tree gets this modification time: 2026-01-01T00:00:00Z. */
const MTIME_S = 1_767_225_600;
/** Fixed, so that the snapshot record (and, unencrypted, its id) depends only on the tree. */
const SNAPSHOT_TIME = '2026-01-01T00:00:00.000Z';
const SOURCE = 'files';
/** 3 MiB: 2 to 4 chunks at the default chunker sizes (min 512 KiB, average 1 MiB). */
const RANDOM_SIZE = 3 * 1024 * 1024;
const MIN_RANDOM_CHUNKS = 3;
/** The chunker seed is random per repository, so a repository cut in fewer chunks is made again. */
const ATTEMPTS = 20;

/** The parts of the checkout's API this script uses (declared here: the checkout's types may differ from ours). */
interface TreeEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtimeMs: number;
  size: number;
  chunks?: string[];
  subtree?: string;
  target?: string;
}
interface Repo {
  readonly config: { version: number };
  readonly encrypted: boolean;
  storeDirectory(dir: string): Promise<{ treeId: string; stats: { skipped: unknown[] } }>;
  saveSnapshot(record: {
    time: string;
    host: string;
    tags: string[];
    trees: Record<string, string>;
    [field: string]: unknown;
  }): Promise<string>;
  listSnapshots(): Promise<string[]>;
  readTree(id: string): Promise<{ entries: TreeEntry[] }>;
  restoreTree(treeId: string, targetDir: string): Promise<unknown>;
  check(options: { readData?: boolean }): Promise<{ ok: boolean }>;
}
interface RepositoryModule {
  Repository: {
    init(store: unknown, options: { password?: string; authKey?: Buffer }): Promise<Repo>;
    open(store: unknown, options: { password?: string; authKey?: Buffer }): Promise<Repo>;
  };
}
interface BlobStoreModule {
  FileBlobStore: new (root: string) => unknown;
}

interface Fixture {
  name: string;
  version: number;
  open: { password?: string; authKey?: Buffer };
  description: string;
}

const FIXTURES: Fixture[] = [
  {
    name: 'v1-encrypted',
    version: 1,
    open: { password: PASSWORD },
    description: `encrypted repository, password ${JSON.stringify(PASSWORD)}`,
  },
  {
    name: 'v2-authenticated',
    version: 2,
    open: { authKey: AUTH_KEY },
    description: `unencrypted repository, records authenticated with the key sha256("trendgen-fixture-auth-key")`,
  },
];

interface ExpectedFile {
  path: string;
  size: number;
  /** Permission bits as octal digits, e.g. "0644". */
  mode: string;
  mtimeMs: number;
  sha256: string;
  chunks: number;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.length !== 2 || args.some((arg) => arg.startsWith('-'))) {
    process.stderr.write(USAGE);
    process.exitCode = 2;
    return;
  }
  const checkout = path.resolve(args[0]!);
  const outDir = path.resolve(args[1]!);
  const repositoryIndex = path.join(checkout, 'src/vault/repository/index.ts');
  const blobstoreIndex = path.join(checkout, 'src/blobstore/index.ts');
  for (const file of [repositoryIndex, blobstoreIndex]) {
    if (!existsSync(file)) throw new Error(`${file} does not exist: is ${checkout} a trendgen checkout?`);
  }
  const commit = git(checkout, 'rev-parse', 'HEAD');
  const changed = git(checkout, 'status', '--porcelain', '--', 'src');
  if (changed) {
    throw new Error(
      `${checkout} has changes under src/ that commit ${commit} does not hold; the fixtures would not be the release's:\n${changed}`,
    );
  }

  const { Repository } = (await import(pathToFileURL(repositoryIndex).href)) as RepositoryModule;
  const { FileBlobStore } = (await import(pathToFileURL(blobstoreIndex).href)) as BlobStoreModule;

  const scratch = await mkdtemp(path.join(os.tmpdir(), 'trendgen-fixtures-'));
  try {
    const source = path.join(scratch, 'source');
    await makeSourceTree(source);
    await mkdir(outDir, { recursive: true });
    for (const fixture of FIXTURES) {
      const dir = path.join(outDir, fixture.name);
      await rm(dir, { recursive: true, force: true });
      const made = await makeFixture(fixture, dir, source, commit, Repository, FileBlobStore);
      await verifyFixture(fixture, made, source, scratch, Repository, FileBlobStore);
      await writeFile(path.join(dir, 'expected.json'), formatJson(made.expected));
      const bytes = await sizeOf(dir);
      process.stdout.write(
        `${fixture.name}: format ${made.expected.configVersion}, snapshot ${made.expected.snapshot.id}, ` +
          `${made.expected.files.find((f) => f.path === 'random.bin')!.chunks} chunks in random.bin, ` +
          `${made.attempts} attempt(s), ${bytes} bytes\n`,
      );
    }
    await writeFile(path.join(outDir, 'README.md'), readme(commit, outDir));
    process.stdout.write(`Wrote ${outDir} (${await sizeOf(outDir)} bytes) with the code of ${commit}.\n`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface Made {
  root: string;
  attempts: number;
  expected: {
    fixture: string;
    description: string;
    madeBy: string;
    configVersion: number;
    encrypted: boolean;
    snapshot: { id: string; time: string; host: string; tags: string[]; source: string; tree: string };
    files: ExpectedFile[];
    dirs: { path: string; mode: string; mtimeMs: number }[];
    symlinks: { path: string; target: string; mtimeMs: number }[];
  };
}

/** Stores the source tree in a new repository as a backup does, and describes what it holds. */
async function makeFixture(
  fixture: Fixture,
  dir: string,
  source: string,
  commit: string,
  Repository: RepositoryModule['Repository'],
  FileBlobStore: BlobStoreModule['FileBlobStore'],
): Promise<Made> {
  const root = path.join(dir, 'repo');
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    // Production defaults for the chunker and scrypt: the fixtures are repositories as the release writes them.
    const repo = await Repository.init(new FileBlobStore(root), fixture.open);
    const { treeId, stats } = await repo.storeDirectory(source);
    if (stats.skipped.length > 0)
      throw new Error(`The backup skipped entries: ${JSON.stringify(stats.skipped)}`);
    const record = {
      time: SNAPSHOT_TIME,
      host: 'fixture',
      tags: ['fixture', fixture.name],
      trees: { [SOURCE]: treeId },
    };
    const snapshotId = await repo.saveSnapshot(record);
    const described = await describeTree(repo, treeId, source);
    const randomChunks = described.files.find((file) => file.path === 'random.bin')!.chunks;
    if (randomChunks < MIN_RANDOM_CHUNKS) {
      process.stdout.write(
        `${fixture.name}: random.bin was cut in ${randomChunks} chunks with this repository's seed; making it again\n`,
      );
      continue;
    }
    const config = JSON.parse(await readFile(path.join(root, 'config'), 'utf8')) as { version: number };
    if (config.version !== fixture.version) {
      throw new Error(
        `The checkout wrote ${fixture.name} as format ${config.version}, not ${fixture.version}: ` +
          'run this script with a release made before repository format 3.',
      );
    }
    await removeEmptyDirs(root);
    return {
      root,
      attempts: attempt,
      expected: {
        fixture: fixture.name,
        description: fixture.description,
        madeBy: commit,
        configVersion: config.version,
        encrypted: repo.encrypted,
        snapshot: {
          id: snapshotId,
          time: record.time,
          host: record.host,
          tags: record.tags,
          source: SOURCE,
          tree: treeId,
        },
        ...described,
      },
    };
  }
  throw new Error(`random.bin never made ${MIN_RANDOM_CHUNKS} chunks in ${ATTEMPTS} repositories.`);
}

/** Reads the stored tree back and pairs every entry with the source file it was made from. */
async function describeTree(
  repo: Repo,
  treeId: string,
  source: string,
): Promise<Pick<Made['expected'], 'files' | 'dirs' | 'symlinks'>> {
  const out: Pick<Made['expected'], 'files' | 'dirs' | 'symlinks'> = { files: [], dirs: [], symlinks: [] };
  const walk = async (id: string, prefix: string) => {
    for (const entry of (await repo.readTree(id)).entries) {
      const rel = prefix + entry.name;
      const abs = path.join(source, rel);
      const info = await lstat(abs);
      if (info.mtimeMs !== entry.mtimeMs || (info.mode & 0o7777) !== entry.mode)
        throw new Error(`${rel}: the stored entry does not match the source`);
      if (entry.type === 'dir') {
        out.dirs.push({ path: rel, mode: octal(entry.mode), mtimeMs: entry.mtimeMs });
        await walk(entry.subtree!, `${rel}/`);
      } else if (entry.type === 'symlink') {
        out.symlinks.push({ path: rel, target: entry.target!, mtimeMs: entry.mtimeMs });
      } else {
        const bytes = await readFile(abs);
        if (bytes.length !== entry.size)
          throw new Error(`${rel}: stored size ${entry.size}, source ${bytes.length}`);
        out.files.push({
          path: rel,
          size: entry.size,
          mode: octal(entry.mode),
          mtimeMs: entry.mtimeMs,
          sha256: sha256(bytes),
          chunks: entry.chunks?.length ?? 0,
        });
      }
    }
  };
  await walk(treeId, '');
  return out;
}

/** Reopens the fixture with the checkout's code, checks it and restores it: a fixture is known good when made. */
async function verifyFixture(
  fixture: Fixture,
  made: Made,
  source: string,
  scratch: string,
  Repository: RepositoryModule['Repository'],
  FileBlobStore: BlobStoreModule['FileBlobStore'],
): Promise<void> {
  // A copy: open, check and restore must leave the fixture as the writer left it.
  const copy = path.join(scratch, `${fixture.name}-copy`);
  await cp(made.root, copy, { recursive: true });
  const repo = await Repository.open(new FileBlobStore(copy), fixture.open);
  const snapshots = await repo.listSnapshots();
  if (snapshots.length !== 1 || snapshots[0] !== made.expected.snapshot.id)
    throw new Error(`${fixture.name}: snapshots ${snapshots.join(', ')}`);
  const report = await repo.check({ readData: true });
  if (!report.ok) throw new Error(`${fixture.name}: check failed: ${JSON.stringify(report)}`);
  const restored = path.join(scratch, `${fixture.name}-restored`);
  await repo.restoreTree(made.expected.snapshot.tree, restored);
  for (const file of made.expected.files) {
    const bytes = await readFile(path.join(restored, file.path));
    if (sha256(bytes) !== file.sha256 || sha256(await readFile(path.join(source, file.path))) !== file.sha256)
      throw new Error(`${fixture.name}: ${file.path} did not restore as stored`);
  }
  await rm(copy, { recursive: true, force: true });
  await rm(restored, { recursive: true, force: true });
}

/**
 * The tree every fixture stores. Content, modes and mtimes are fixed (chmod and utimes, whatever the umask);
 * only inode numbers differ between runs.
 */
async function makeSourceTree(source: string): Promise<void> {
  const file = async (rel: string, content: Buffer | string, mode = 0o644) => {
    const abs = path.join(source, rel);
    await writeFile(abs, content);
    await chmod(abs, mode);
  };
  await mkdir(path.join(source, 'nested', 'deeper'), { recursive: true });
  await file('empty.txt', '');
  const hello =
    'Hello from the trendgen repository-format fixture. This file is exactly one hundred bytes long';
  await file('hello.txt', `${hello.padEnd(99, '.')}\n`);
  await file('random.bin', pseudoRandom(RANDOM_SIZE, 'trendgen-fixture-random'));
  await file('secret.txt', 'BACKUP_KEY would never be kept here; this file only has mode 0600.\n', 0o600);
  const line = "SELECT * FROM generations WHERE trend = $1 AND status = 'succeeded';\n";
  // Text that zstd shrinks well, so the fixture also holds compressed frames (compression byte 1).
  await file('nested/notes.txt', line.repeat(Math.ceil(65_536 / line.length)).slice(0, 65_536));
  await file('nested/deeper/leaf.txt', 'a file two directories down\n', 0o640);
  await symlink('hello.txt', path.join(source, 'link-to-hello'));
  await chmod(path.join(source, 'nested', 'deeper'), 0o750);
  await chmod(path.join(source, 'nested'), 0o755);
  if ((await readFile(path.join(source, 'hello.txt'))).length !== 100)
    throw new Error('hello.txt is not 100 bytes');
  // Deepest first, so that setting a directory's time is the last change to it.
  for (const rel of [
    'empty.txt',
    'hello.txt',
    'random.bin',
    'secret.txt',
    'nested/notes.txt',
    'nested/deeper/leaf.txt',
    'nested/deeper',
    'nested',
  ]) {
    await utimes(path.join(source, rel), MTIME_S, MTIME_S);
  }
  await lutimes(path.join(source, 'link-to-hello'), MTIME_S, MTIME_S);
}

/** AES-256-CTR keystream under sha256(seed), zero IV: the same bytes on every run and platform. */
function pseudoRandom(size: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

function readme(commit: string, outDir: string): string {
  const rel = path.relative(process.cwd(), outDir) || '.';
  return `# Repository format fixtures

Vault repositories written by the trendgen release at commit \`${commit}\`, before repository format 3, so
that the current code is tested against repositories a release really wrote
(\`test/vault/repository/format-fixtures.test.ts\`). They were made by a script with that commit's own code,
never by hand; do not edit them.

| folder | what |
|---|---|
${FIXTURES.map((f) => `| \`${f.name}/repo\` | format ${f.version}: ${f.description} |`).join('\n')}

Each repository holds one snapshot (source \`files\`) of the same small tree: an empty file, a 100-byte text
file, a 3 MiB pseudo-random file cut in several chunks (default chunker sizes), a file of mode 0600, a nested
directory with a compressible file, and a symlink. \`<name>/expected.json\` lists every file (path, size, mode,
mtime, sha256, chunk count), directory and symlink, the snapshot id and the config version. Chunker and scrypt
parameters are the production defaults.

The test copies each repository to a temporary folder before opening it: nothing ever writes here.

## Regenerating

Only to replace them with repositories of the same formats (repository ids, keys, nonces and the chunker seed
are random, so every file changes):

\`\`\`sh
git worktree add /tmp/release-${commit.slice(0, 7)} ${commit.slice(0, 7)}
ln -s "$PWD/node_modules" /tmp/release-${commit.slice(0, 7)}/node_modules   # or: (cd /tmp/release-${commit.slice(0, 7)} && npm ci --ignore-scripts)
npx tsx scripts/make-repository-fixtures.ts /tmp/release-${commit.slice(0, 7)} ${rel}
git worktree remove --force /tmp/release-${commit.slice(0, 7)}
\`\`\`
`;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-C', cwd, ...args], { encoding: 'utf8' }).trim();
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * JSON as the repository's formatter (biome, line width 110) writes it, so that \`biome ci\` accepts the fixture
 * unchanged: two-space indent, and an array of strings or numbers on one line when that line fits.
 */
function formatJson(value: unknown): string {
  const text = JSON.stringify(value, null, 2);
  const primitiveArray =
    /^( *)("(?:[^"\\]|\\.)*": )?\[\n((?: *(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+),?\n)+) *\]/gm;
  const collapsed = text.replace(
    primitiveArray,
    (whole, indent: string, key: string | undefined, body: string) => {
      const items = body
        .split('\n')
        .filter(Boolean)
        .map((item) => item.trim().replace(/,$/, ''));
      const line = `${indent}${key ?? ''}[${items.join(', ')}]`;
      // +1: the comma that may follow on the same line.
      return line.length + 1 <= 110 ? line : whole;
    },
  );
  return `${collapsed}\n`;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** git keeps no empty folders (the store's .tmp/): the fixture holds none, so a clone has exactly what was made. */
async function removeEmptyDirs(dir: string): Promise<boolean> {
  let empty = true;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && (await removeEmptyDirs(path.join(dir, entry.name)))) continue;
    empty = false;
  }
  if (empty) await rmdir(dir);
  return empty;
}

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await lstat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
