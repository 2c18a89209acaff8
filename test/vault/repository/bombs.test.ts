import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compress } from '@mongodb-js/zstd';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../../src/blobstore/file.ts';
import { Codec, DecodeError } from '../../../src/vault/repository/codec.ts';

import { zstdBound } from '../../../src/vault/repository/compression.ts';

import { Repository } from '../../../src/vault/repository/index.ts';
import { runCli } from '../../support/cli.ts';
import { tempDir } from '../../support/temp.ts';

const GIB = 1024 * 1024 * 1024;
const BLOCK = 128 * 1024;

/**
 * A zstd frame of `bytes` zeros made of RLE blocks, 4 bytes per 128 KiB, as a hostile writer would craft it:
 * 1 GiB takes 33 KB. No content size in its header, so only the block headers tell how big it is.
 */
function zstdBomb(bytes: number): Buffer {
  const blocks = Math.ceil(bytes / BLOCK);
  const out = Buffer.alloc(6 + blocks * 4);
  out.writeUInt32LE(0xfd2fb528, 0);
  out[4] = 0x00; // no content size, not single segment, no checksum
  out[5] = 0x58; // a 2 MiB window
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    out.writeUIntLE((BLOCK << 3) | (1 << 1) | last, 6 + i * 4, 3);
    out[6 + i * 4 + 3] = 0;
  }
  return out;
}

/** A stored file of the repository format (not encrypted): kind, zstd, payload. */
const framed = (kind: number, payload: Buffer) => Buffer.concat([Buffer.from([kind, 1]), payload]);

/** Runs the real CLI and samples its peak resident memory (VmHWM) from /proc until it exits. */
async function peakRss(args: string[], env: Record<string, string>) {
  const run = runCli(args, env);
  let peakKb = 0;
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    } catch {
      // Exited between samples.
    }
  };
  const timer = setInterval(sample, 10);
  const result = await run;
  clearInterval(timer);
  return { ...result, peakMb: peakKb / 1024 };
}

describe('decompression bombs in a repository (issue 15, item 5)', () => {
  let temp: ReturnType<typeof tempDir> | undefined;
  afterEach(() => temp?.remove());

  it('the frame and block headers bound what a payload can become, before anything is inflated', async () => {
    const bomb = zstdBomb(GIB);
    expect(bomb.length).toBeLessThan(40_000);
    expect(zstdBound(bomb, 64 * 1024 * 1024)).toBeGreaterThan(64 * 1024 * 1024);
    // Real zstd output: the bound is the size, give or take one block.
    const plain = Buffer.concat([Buffer.alloc(3_000_000, 'abc'), randomBytes(500_000)]);
    const packed = await compress(plain, 3);
    const bound = zstdBound(packed, 64 * 1024 * 1024);
    expect(bound).toBeGreaterThanOrEqual(plain.length);
    expect(bound).toBeLessThanOrEqual(plain.length + BLOCK);
    const codec = new Codec(undefined, 3);
    const started = Date.now();
    await expect(codec.decode(framed(2, bomb), 16 * 1024 * 1024)).rejects.toThrow(DecodeError);
    expect(Date.now() - started).toBeLessThan(1000);
    const round = await codec.decode(await codec.encode('data', plain, undefined, 8 * 1024 * 1024), 8e6);
    expect(round.plaintext.equals(plain)).toBe(true);
  });

  it('snapshots, check --read-data and restore stay under 300 MB with 1 GiB bombs in snapshots/ and data/', async () => {
    temp = tempDir('bombs');
    const backupDir = path.join(temp.dir, 'backups');
    const key = randomBytes(32);
    await Repository.init(new FileBlobStore(backupDir), { authKey: key });
    const bomb = zstdBomb(GIB);
    const snapshotId = randomBytes(32).toString('hex');
    mkdirSync(path.join(backupDir, 'snapshots'), { recursive: true });
    writeFileSync(path.join(backupDir, 'snapshots', snapshotId), framed(2, bomb));
    const blobId = randomBytes(32).toString('hex');
    mkdirSync(path.join(backupDir, 'data', blobId.slice(0, 2)), { recursive: true });
    writeFileSync(path.join(backupDir, 'data', blobId.slice(0, 2), blobId), framed(0, bomb));
    const env = {
      BACKUP_DIR: backupDir,
      DATA_DIR: path.join(temp.dir, 'data'),
      PROMPTS_DIR: path.join(temp.dir, 'prompts'),
      LOG_LEVEL: 'error',
      BACKUP_KEY: key.toString('hex'),
    };
    const runs = {
      snapshots: await peakRss(['snapshots', '--json'], env),
      check: await peakRss(['check', '--read-data', '--json'], env),
      restore: await peakRss(['restore', snapshotId, '--to-dir', path.join(temp.dir, 'out')], env),
      latest: await peakRss(['restore', 'latest', '--to-dir', path.join(temp.dir, 'out2')], env),
    };
    console.log(
      `peak RSS with bombs: ${Object.entries(runs)
        .map(([name, r]) => `${name} ${r.peakMb.toFixed(0)} MB`)
        .join(', ')}`,
    );
    for (const [name, run] of Object.entries(runs)) {
      expect(run.peakMb, `${name}: ${run.stderr}`).toBeGreaterThan(0);
      expect(run.peakMb, `${name} peak RSS`).toBeLessThan(300);
    }
    expect(runs.check.code).toBe(1);
    expect(runs.check.stdout).toContain(snapshotId);
    expect(runs.check.stdout).toContain(blobId);
    expect(runs.restore.code).toBe(1);
    expect(runs.restore.stderr).toContain(snapshotId);
    expect(runs.latest.code).toBe(1);
  }, 120_000);
});
