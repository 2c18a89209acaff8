import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for an OpenAI-compatible images API on 127.0.0.1. Stand-ins are avoided in this project;
 * this one exists because the real service is outside our reach in tests. It answers in the API's
 * shape, records what it received, and can misbehave on cue.
 */
export type Answer =
  | { status: number; json?: unknown; body?: string | Buffer; headers?: Record<string, string> }
  | 'hang'
  | 'reset';
/** A function answers with something that names the server itself, such as an image URL. */
export type Reply = Answer | ((origin: string) => Answer);

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The multipart form as the server parsed it; undefined for requests without one. */
  form: FormData | undefined;
  at: number;
}

export interface ImagesApi {
  /** Ends with /v1, as OPENAI_BASE_URL does. */
  baseUrl: string;
  received: Received[];
  /** Bytes served at `${origin}/files/<name>` for answers that give a URL instead of base64. */
  files: Map<string, Buffer>;
  origin: string;
  close(): Promise<void>;
}

/** `replies[i]` answers the i-th request to /v1/images/edits; the last one repeats. */
export async function startImagesApi(replies: Reply[]): Promise<ImagesApi> {
  const received: Received[] = [];
  const files = new Map<string, Buffer>();
  let edits = 0;
  let origin = '';
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const path = req.url ?? '/';
    let form: FormData | undefined;
    if (String(req.headers['content-type']).startsWith('multipart/form-data')) {
      // undici's own multipart parser reads the body exactly as a real server would receive it.
      form = await new Request('http://parse.invalid/', {
        method: 'POST',
        headers: { 'content-type': req.headers['content-type']! },
        body,
      }).formData();
    }
    received.push({ method: req.method ?? '', path, headers: req.headers, form, at: Date.now() });
    if (path.startsWith('/files/')) {
      const file = files.get(path.slice('/files/'.length));
      return send(
        res,
        file ? { status: 200, body: file, headers: { 'content-type': 'image/png' } } : { status: 404 },
      );
    }
    if (req.method !== 'POST' || path !== '/v1/images/edits') {
      return send(res, { status: 404, json: { error: { message: `Unknown route ${path}` } } });
    }
    const next = replies[Math.min(edits++, replies.length - 1)]!;
    const reply = typeof next === 'function' ? next(origin) : next;
    if (reply === 'hang') return;
    if (reply === 'reset') return req.socket.destroy();
    send(res, reply);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl: `${origin}/v1`,
    origin,
    received,
    files,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(
  res: ServerResponse,
  reply: Exclude<Reply, 'hang' | 'reset' | ((origin: string) => Reply)>,
): void {
  const headers: Record<string, string> = { ...reply.headers };
  let body: string | Buffer = reply.body ?? '';
  if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    headers['content-type'] ??= 'application/json';
  }
  res.writeHead(reply.status, headers).end(body);
}

/** The API's success shape with the image inline. */
export function b64Answer(image: Buffer): Answer {
  return { status: 200, json: { created: 1_700_000_000, data: [{ b64_json: image.toString('base64') }] } };
}

/** The API's error shape, as OpenAI sends it. */
export function errorAnswer(status: number, message: string, headers?: Record<string, string>): Answer {
  const type = status >= 500 ? 'server_error' : 'invalid_request_error';
  return {
    status,
    json: { error: { message, type, param: null, code: null } },
    ...(headers ? { headers } : {}),
  };
}
