import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Settings } from '../../src/config/config.ts';

export interface S3Server {
  endpoint: string;
  settings: S3Settings;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./s3-server-main.mjs', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

/**
 * Starts a real S3-protocol server (s3rver) in a child process on a free port of 127.0.0.1, with its
 * data in a fresh temp directory and the given buckets created. s3rver ignores If-None-Match, has no
 * versioning and fails AbortMultipartUpload: code under test must not depend on those.
 */
export async function startS3Server(options: {
  buckets: string[];
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}): Promise<S3Server> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'trendgen-s3rver-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    S3RVER_TLS_CERT: options.tls?.cert,
    S3RVER_TLS_KEY: options.tls?.key,
  };
  // The test runner's NODE_OPTIONS (loaders, inspector) have no business in the server process.
  delete env['NODE_OPTIONS'];
  const child = spawn(process.execPath, ['--openssl-legacy-provider', MAIN, dir, ...options.buckets], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let port: number;
  try {
    port = await waitForPort(child);
  } catch (error) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    settings: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
    },
    stop() {
      stopping ??= (async () => {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

function waitForPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(
      () => fail(new Error(`s3rver did not start within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`)),
      READY_TIMEOUT_MS,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n', 2);
      if (line.length < 2) return;
      clearTimeout(timer);
      try {
        resolve((JSON.parse(line[0]!) as { port: number }).port);
      } catch {
        reject(new Error(`s3rver printed an unexpected first line: ${line[0]}`));
      }
    });
    child.once('error', fail);
    child.once('exit', (code, signal) =>
      fail(new Error(`s3rver exited before listening (${signal ?? code}): ${stderr.trim()}`)),
    );
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  child.stdin?.destroy();
}
