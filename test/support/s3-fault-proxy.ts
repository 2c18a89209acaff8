import http from 'node:http';
import type net from 'node:net';
import { seededRandom } from './files.ts';

export type S3FaultMode = 'pass' | 'slow' | 'status-500' | 'status-503' | 'reset' | 'truncate' | 'gone';

export interface S3FaultProxy {
  endpoint: string;
  /** Changes the fault from the next request on; the seed makes the choice of faulty requests replayable. */
  setMode(mode: S3FaultMode, seed?: number): void;
  /** Requests seen and requests faulted since the last setMode. */
  readonly counts: { requests: number; faulted: number };
  close(): Promise<void>;
}

export interface S3FaultOptions {
  /** Share of requests hit by status-500, status-503, reset and truncate (GETs only). */
  fraction?: number;
  /** Delay of each request in `slow` mode, in ms; the body is then trickled in pieces. */
  slowMs?: [number, number];
}

const ERRORS = {
  'status-500': [500, 'InternalError', 'We encountered an internal error. Please try again.'],
  'status-503': [503, 'SlowDown', 'Please reduce your request rate.'],
} as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An HTTP proxy on 127.0.0.1 in front of an S3 server that misbehaves on demand: slow answers, 500 and
 * 503 errors, connections reset mid-request, GET bodies cut short under their full content-length, or the
 * endpoint gone. Requests keep their Host header, so SigV4 signatures made for the proxy still verify.
 */
export async function startS3FaultProxy(
  upstream: string,
  options: S3FaultOptions = {},
): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const fraction = options.fraction ?? 0.3;
  const [slowMin, slowMax] = options.slowMs ?? [300, 1500];
  let mode: S3FaultMode = 'pass';
  let random = seededRandom(0);
  const counts = { requests: 0, faulted: 0 };
  const sockets = new Set<net.Socket>();
  const agent = new http.Agent({ keepAlive: false });

  const server = http.createServer(async (req, res) => {
    const current = mode;
    counts.requests++;
    const hit = random() < fraction;
    const fault = (kind: string) => {
      counts.faulted++;
      return kind;
    };
    if (current === 'gone') {
      fault('gone');
      req.socket.resetAndDestroy();
      return;
    }
    if ((current === 'status-500' || current === 'status-503') && hit) {
      fault(current);
      const [status, code, message] = ERRORS[current];
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${req.url}</Resource><RequestId>fault-${counts.requests}</RequestId></Error>`;
      req.resume();
      req.once('end', () =>
        res
          .writeHead(status, {
            'content-type': 'application/xml',
            ...(status === 503 ? { 'retry-after': '1' } : {}),
          })
          .end(body),
      );
      return;
    }
    // A reset either before the request reaches S3, or after S3 did the work but before the client hears it.
    const resetAt = current === 'reset' && hit ? (random() < 0.5 ? 'before' : 'after') : undefined;
    if (resetAt === 'before') {
      fault('reset');
      setTimeout(() => req.socket.resetAndDestroy(), Math.floor(random() * 20));
      return;
    }
    if (current === 'slow') {
      fault('slow');
      await sleep(slowMin + Math.floor(random() * (slowMax - slowMin)));
    }
    const forward = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      async (up) => {
        const parts: Buffer[] = [];
        for await (const part of up) parts.push(part as Buffer);
        const body = Buffer.concat(parts);
        if (resetAt === 'after') {
          fault('reset');
          req.socket.resetAndDestroy();
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.rawHeaders);
        if (current === 'truncate' && hit && req.method === 'GET' && body.length > 1) {
          fault('truncate');
          // The full content-length was promised: the client sees the connection close early.
          res.write(body.subarray(0, Math.floor(body.length * random())), () => req.socket.destroy());
          return;
        }
        if (current === 'slow' && body.length > 0) {
          const pieces = 2 + Math.floor(random() * 4);
          const size = Math.ceil(body.length / pieces);
          for (let at = 0; at < body.length; at += size) {
            if (res.destroyed) return;
            res.write(body.subarray(at, at + size));
            await sleep(10 + Math.floor(random() * 50));
          }
          res.end();
          return;
        }
        res.end(body);
      },
    );
    forward.on('error', () => req.socket.destroy());
    req.pipe(forward);
  });
  server.on('connection', (socket: net.Socket) => {
    if (mode === 'gone') {
      counts.requests++;
      counts.faulted++;
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    counts,
    setMode(next, seed = 0) {
      mode = next;
      random = seededRandom(seed);
      counts.requests = 0;
      counts.faulted = 0;
      if (next === 'gone') for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}
