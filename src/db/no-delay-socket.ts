import net from 'node:net';

/** What postgres.js passes its `socket` option: the parsed hosts and ports, or a Unix socket's path. */
interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * Sockets with Nagle's algorithm off, as libpq opens every connection. postgres.js leaves it on, so of two
 * writes in a row the second waits for the server's delayed ACK: a `COPY … FROM STDIN` sends its last rows and
 * its end that way, and each one took 44 ms more (a restore's 22 small tables: 1.5 s, 0.06 s with this).
 *
 * The socket is handed over while it connects: postgres.js's writes wait in it until then, and a refused or
 * timed-out connection fails and closes it as one of postgres.js's own would, so postgres.js tries the next
 * host of a failover URL (this takes them in turn, one per attempt) and its connect timeout applies.
 */
export function noDelaySockets(): (target: SocketTarget) => net.Socket {
  let next = 0;
  return (target) => {
    const index = next++ % Math.max(1, target.host.length);
    const host = target.host[index]!;
    const port = target.port[index] ?? target.port[0]!;
    const socket = target.path ? net.connect(target.path) : net.connect({ host, port, noDelay: true });
    // postgres.js names the TLS server after `socket.host`, as on the sockets it opens itself.
    return Object.assign(socket, { host, port });
  };
}
