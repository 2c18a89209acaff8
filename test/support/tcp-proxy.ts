import net from 'node:net';

/**
 * `up` forwards; `down` resets every connection at once (the server is gone); `hang` accepts connections and
 * never answers (a network that drops packets: the client waits for its own timeouts).
 */
export type TcpProxyMode = 'up' | 'down' | 'hang';

export interface TcpProxy {
  port: number;
  /** While down, every connection is reset at once: the endpoint looks dead. */
  setDown(down: boolean): void;
  /** Connections open when the mode changes are cut (a held one is reset, as its peer would see it). */
  setMode(mode: TcpProxyMode): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of a real server, to take it away and bring it back. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let mode: TcpProxyMode = 'up';
  const sockets = new Set<net.Socket>();
  const held = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    if (mode === 'hang') {
      // Read nothing, answer nothing: the request sits in the kernel's buffers.
      client.pause();
      held.add(client);
      client.on('error', () => held.delete(client));
      client.on('close', () => held.delete(client));
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const setMode = (next: TcpProxyMode) => {
    mode = next;
    if (next !== 'up') for (const socket of sockets) socket.destroy();
    if (next !== 'hang') for (const socket of held) socket.resetAndDestroy();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    setDown: (down) => setMode(down ? 'down' : 'up'),
    setMode,
    close: () =>
      new Promise((resolve) => {
        for (const socket of [...sockets, ...held]) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
