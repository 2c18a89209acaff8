import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../src/blobstore/file.ts';
import { snapshotKey } from '../../src/vault/repository/format.ts';
import {
  FORMAT_VERSION,
  InvalidSnapshotError,
  InvalidTreeError,
  Repository,
  RepositoryError,
  UnsupportedFormatError,
  WrongPasswordError,
} from '../../src/vault/repository/index.ts';
import { SAMPLE_PROMPT } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { tempDir } from '../support/temp.ts';
import { FAST_KDF, SMALL_CHUNKS } from '../vault/repository/helpers.ts';
import { expectPlainSentence, holds, seedOf } from './hostile-support.ts';

/**
 * Hostile repositories: records replaced by garbage (sealed with the right key, so they pass
 * authentication and reach the parsers), a wrong password, a config from a newer format. Each must
 * fail with one plain sentence, through the library and through the CLI, and never write half a restore.
 */
const PASSWORD = 'the right password';
let temp: ReturnType<typeof tempDir>;
let root: string;
let repo: Repository;
let goodSnapshot: string;
let env: Record<string, string>;

beforeAll(async () => {
  temp = tempDir('hostile-vault');
  root = path.join(temp.dir, 'backups');
  repo = await Repository.init(new FileBlobStore(root), {
    password: PASSWORD,
    kdf: FAST_KDF,
    chunker: SMALL_CHUNKS,
  });
  const prompts = path.join(temp.dir, 'source-prompts');
  await mkdir(prompts);
  writeFileSync(path.join(prompts, 'p.yaml'), SAMPLE_PROMPT('p'));
  const stored = await repo.storeDirectory(prompts);
  goodSnapshot = await repo.saveSnapshot({
    time: new Date().toISOString(),
    host: 'h',
    tags: [],
    trees: { prompts: stored.treeId },
  });
  env = {
    BACKUP_DIR: root,
    BACKUP_PASSWORD: PASSWORD,
    DATA_DIR: path.join(temp.dir, 'data'),
    PROMPTS_DIR: path.join(temp.dir, 'live-prompts'),
    LOG_LEVEL: 'error',
  };
});
afterAll(() => temp?.remove());

/** Stores `plaintext` as a snapshot record sealed with the repository's keys, under its true id. */
async function plantSnapshot(plaintext: Buffer): Promise<string> {
  const id = repo.blobId(plaintext);
  const bytes = await repo.codec.encode('snapshot', plaintext);
  await repo.store.put(snapshotKey(id), bytes, { size: bytes.length });
  return id;
}

const GOOD_RECORD = () => ({
  time: new Date().toISOString(),
  host: 'h',
  tags: [] as unknown,
  trees: {} as unknown,
});
const garbageJson = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.string().map((s) => Buffer.from(s)),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc
    .record({
      field: fc.constantFrom('time', 'host', 'tags', 'trees', 'parent'),
      value: fc.oneof(
        fc.jsonValue(),
        fc.constant('../../etc'),
        fc.constant({ '..': 'x' }),
        fc.constant({ 'a/b': '0'.repeat(64) }),
      ),
    })
    .map(({ field, value }) => Buffer.from(JSON.stringify({ ...GOOD_RECORD(), [field]: value }))),
);

describe('vault records replaced by garbage', () => {
  it(`a malformed snapshot record is InvalidSnapshotError, one sentence (seed ${seedOf(6001)})`, async () => {
    await holds(6001, garbageJson, async (plaintext) => {
      const id = await plantSnapshot(plaintext);
      try {
        const snapshot = await repo.loadSnapshot(id);
        // Garbage can be a valid record by chance; then it must be one a restore can trust.
        for (const tree of Object.values(snapshot.trees)) expect(tree).toMatch(/^[0-9a-f]{64}$/);
      } catch (error) {
        expect(error, String(error)).toBeInstanceOf(InvalidSnapshotError);
        expectPlainSentence((error as Error).message);
      } finally {
        await repo.deleteSnapshot(id);
      }
    });
  });

  it(`a malformed tree is InvalidTreeError and the restore writes nothing (seed ${seedOf(6002)})`, async () => {
    let run = 0;
    const tree = fc.oneof(
      garbageJson,
      fc
        .record({
          name: fc.oneof(fc.constantFrom('..', '.', '', 'a/b', '/etc/passwd', 'x\u0000y'), fc.string()),
          type: fc.oneof(fc.constantFrom('file', 'dir', 'symlink', 'fifo'), fc.jsonValue()),
          mode: fc.oneof(fc.integer(), fc.jsonValue()),
          size: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.jsonValue()),
        })
        .map((entry) => Buffer.from(JSON.stringify({ entries: [{ mtimeMs: 0, chunks: [], ...entry }] }))),
    );
    await holds(6002, tree, async (plaintext) => {
      const { id } = await repo.putBlob('tree', plaintext);
      const target = path.join(temp.dir, `restore-${run++}`);
      try {
        await repo.restoreTree(id, target);
      } catch (error) {
        expect(error, String(error)).toBeInstanceOf(RepositoryError);
        expectPlainSentence((error as Error).message);
        if (error instanceof InvalidTreeError) expect(existsSync(target)).toBe(false);
      }
    });
  });

  it(`config: any other format version or damaged field is refused before anything is read (seed ${seedOf(6003)})`, async () => {
    const original = JSON.parse(readFileSync(path.join(root, 'config'), 'utf8'));
    const mutated = fc.oneof(
      fc
        .integer({ min: FORMAT_VERSION + 1, max: 2 ** 31 })
        .map((version) => ({ ...original, version, id: 'garbage' })),
      fc
        .record({
          field: fc.constantFrom('version', 'id', 'chunker', 'compression', 'encryption'),
          value: fc.jsonValue(),
        })
        .map(({ field, value }) => ({ ...original, [field]: value })),
      fc
        .record({
          field: fc.constantFrom('minSize', 'avgSize', 'maxSize', 'algorithm'),
          value: fc.oneof(fc.integer({ min: -1, max: 2 ** 27 }), fc.jsonValue()),
        })
        .map(({ field, value }) => ({ ...original, chunker: { ...original.chunker, [field]: value } })),
      fc
        .record({
          field: fc.constantFrom('N', 'r', 'p', 'salt', 'algorithm'),
          value: fc.oneof(fc.integer({ min: -1, max: 2 ** 22 }), fc.jsonValue()),
        })
        .map(({ field, value }) => ({
          ...original,
          encryption: { ...original.encryption, kdf: { ...original.encryption.kdf, [field]: value } },
        })),
      fc.string().map((keys) => ({ ...original, encryption: { ...original.encryption, keys } })),
    );
    const dir = path.join(temp.dir, 'config-only');
    await holds(
      6003,
      mutated,
      async (config) => {
        await mkdir(dir, { recursive: true });
        writeFileSync(path.join(dir, 'config'), JSON.stringify(config));
        try {
          await Repository.open(new FileBlobStore(dir), { password: PASSWORD });
        } catch (error) {
          expect(error, String((error as Error).stack)).toBeInstanceOf(RepositoryError);
          expectPlainSentence((error as Error).message);
          if (
            typeof config.version === 'number' &&
            Number.isInteger(config.version) &&
            config.version > FORMAT_VERSION
          )
            expect(error).toBeInstanceOf(UnsupportedFormatError);
        }
      },
      0.5,
    );
  });

  it(`a wrong password is WrongPasswordError, whatever it is (seed ${seedOf(6004)})`, async () => {
    const store = new FileBlobStore(root);
    await holds(
      6004,
      fc.string({ minLength: 1 }).filter((p) => p.normalize('NFC') !== PASSWORD),
      async (password) => {
        await expect(Repository.open(store, { password })).rejects.toBeInstanceOf(WrongPasswordError);
      },
      0.3,
    );
  });
});

describe('the same through the CLI: exit 1, one sentence, no half restore', () => {
  async function expectCliFails(args: string[], extra: Record<string, string>, says: RegExp): Promise<void> {
    const result = await runCli(args, { ...env, ...extra });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr, result.stderr).toMatch(says);
    // Progress lines ("[   0.0s] prompts") may come first; the failure is one line of its own.
    const lines = result.stderr
      .trim()
      .split('\n')
      .filter((line) => !/^\[\s*\d+\.\d+s\]/.test(line));
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0], result.stderr).toMatch(/^trendgen: /);
    expectPlainSentence(lines[0]!);
  }

  it('a wrong password, a newer format, a garbage snapshot and a garbage tree', async () => {
    await expectCliFails(['snapshots'], { BACKUP_PASSWORD: 'not the right one' }, /password is wrong/);

    const restoreTo = path.join(temp.dir, 'cli-restore');
    const garbageSnapshot = await plantSnapshot(Buffer.from('{"time": 42, "trees": null'));
    await expectCliFails(
      ['restore', garbageSnapshot, '--only', 'prompts', '--to-dir', restoreTo],
      {},
      /snapshot .* damaged or malformed/,
    );
    expect(existsSync(path.join(restoreTo, 'prompts'))).toBe(false);

    const badTree = (await repo.putBlob('tree', Buffer.from('{"entries":[{"name":"..","type":"file"}]}'))).id;
    const snapshot = await plantSnapshot(
      Buffer.from(
        JSON.stringify({ time: new Date(0).toISOString(), host: 'h', tags: [], trees: { prompts: badTree } }),
      ),
    );
    await expectCliFails(
      ['restore', snapshot, '--only', 'prompts', '--to-dir', restoreTo],
      {},
      /tree .* invalid/,
    );
    expect(existsSync(path.join(restoreTo, 'prompts'))).toBe(false);

    const newer = path.join(temp.dir, 'newer');
    await mkdir(newer);
    const config = JSON.parse(readFileSync(path.join(root, 'config'), 'utf8'));
    writeFileSync(path.join(newer, 'config'), JSON.stringify({ ...config, version: 7, chunker: 'changed' }));
    await expectCliFails(
      ['snapshots'],
      { BACKUP_DIR: newer },
      /newer trendgen \(format 7\); upgrade trendgen/,
    );
    await expectCliFails(
      ['restore', 'latest', '--only', 'prompts', '--to-dir', restoreTo],
      { BACKUP_DIR: newer },
      /format 7/,
    );
    expect(existsSync(path.join(restoreTo, 'prompts'))).toBe(false);
    // Nothing visible: hidden staging or bookkeeping entries (".prompts.…") are the restore's own business.
    expect((existsSync(restoreTo) ? readdirSync(restoreTo) : []).filter((n) => !n.startsWith('.'))).toEqual(
      [],
    );
    expect(goodSnapshot).toMatch(/^[0-9a-f]{64}$/);
  }, 120_000);
});
