import { MessageChannel, type MessagePort } from 'node:worker_threads';

/**
 * Named byte streams served by one thread to another over a MessagePort: the restore's main thread reads a
 * dump's files from the repository (verified, decrypted) and the loading thread pulls them into COPY, so the
 * dump is never written to scratch and read back. Pull-driven: the loading thread asks for a few chunks ahead
 * and no more, so a slow database holds the repository's reads back instead of filling memory.
 */

/** Chunks the loading thread asks for before it has used the one in hand. */
const PULLS_AHEAD = 2;

type Request = { open: number; name: string } | { pull: number } | { close: number };
type Reply =
  | { id: number; chunk: Uint8Array }
  | { id: number; done: true }
  | { id: number; error: { name: string; message: string } };

export interface DumpFeed {
  /** The port to hand to the loading thread (in a transfer list), for `pullFiles` there. */
  port: MessagePort;
  /** The first error a stream met on this side, as thrown (the loading thread sees only its sentence). */
  failure(): Error | undefined;
  close(): void;
}

/** Serves `open(name)`'s bytes to whoever holds the returned port; an unknown name is refused. */
export function serveFiles(open: (name: string) => AsyncIterator<Buffer> | undefined): DumpFeed {
  const { port1: here, port2: there } = new MessageChannel();
  const streams = new Map<number, { reading: AsyncIterator<Buffer>; turn: Promise<void> }>();
  let failure: Error | undefined;
  const answer = async (id: number, reading: AsyncIterator<Buffer>) => {
    try {
      const next = await reading.next();
      if (next.done) return here.postMessage({ id, done: true } satisfies Reply);
      const chunk = next.value;
      // A chunk that owns its whole memory is offered for transfer; a slice of a shared one is copied, and so is
      // memory that cannot be detached (the native zstd binding's: postMessage copies it without a word).
      const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      here.postMessage({ id, chunk } satisfies Reply, whole ? [chunk.buffer as ArrayBuffer] : []);
    } catch (error) {
      failure ??= error as Error;
      const { name, message } = error as Error;
      here.postMessage({ id, error: { name, message } } satisfies Reply);
    }
  };
  here.on('message', (request: Request) => {
    if ('open' in request) {
      const reading = open(request.name);
      if (reading) return void streams.set(request.open, { reading, turn: Promise.resolve() });
      const message = `The backup's dump holds no file ${JSON.stringify(request.name)}.`;
      return void here.postMessage({ id: request.open, error: { name: 'Error', message } } satisfies Reply);
    }
    if ('pull' in request) {
      const stream = streams.get(request.pull);
      if (!stream) return void here.postMessage({ id: request.pull, done: true } satisfies Reply);
      // One read at a time per stream, answered in the order asked.
      stream.turn = stream.turn.then(() => answer(request.pull, stream.reading));
      return;
    }
    const stream = streams.get(request.close);
    streams.delete(request.close);
    void stream?.turn.then(() => stream.reading.return?.()).catch(() => {});
  });
  return {
    port: there,
    failure: () => failure,
    close() {
      for (const stream of streams.values())
        void stream.turn.then(() => stream.reading.return?.()).catch(() => {});
      streams.clear();
      here.close();
    },
  };
}

/** The loading thread's side: opens a served file by name and yields its chunks as they arrive. */
export function pullFiles(port: MessagePort): (name: string) => AsyncGenerator<Buffer> {
  const inboxes = new Map<number, { replies: Reply[]; wake: (() => void) | undefined }>();
  let opened = 0;
  port.on('message', (reply: Reply) => {
    const inbox = inboxes.get(reply.id);
    if (!inbox) return;
    inbox.replies.push(reply);
    inbox.wake?.();
  });
  return async function* pull(name: string): AsyncGenerator<Buffer> {
    const id = ++opened;
    const inbox: { replies: Reply[]; wake: (() => void) | undefined } = { replies: [], wake: undefined };
    inboxes.set(id, inbox);
    port.postMessage({ open: id, name } satisfies Request);
    let asked = 0;
    let ended = false;
    const askAhead = () => {
      for (; asked < PULLS_AHEAD; asked++) port.postMessage({ pull: id } satisfies Request);
    };
    try {
      askAhead();
      for (;;) {
        while (inbox.replies.length === 0) {
          await new Promise<void>((resolve) => {
            inbox.wake = resolve;
          });
        }
        inbox.wake = undefined;
        const reply = inbox.replies.shift()!;
        asked--;
        if ('error' in reply) {
          ended = true;
          throw Object.assign(new Error(reply.error.message), { name: reply.error.name });
        }
        if ('done' in reply) {
          ended = true;
          return;
        }
        askAhead();
        yield Buffer.from(reply.chunk.buffer, reply.chunk.byteOffset, reply.chunk.byteLength);
      }
    } finally {
      inboxes.delete(id);
      if (!ended) port.postMessage({ close: id } satisfies Request);
    }
  };
}
