import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connection.ts';
import { testDatabases } from '../support/database.ts';
import { closedPort } from '../support/ports.ts';

// The restore's COPY lanes connect through noDelaySockets (Nagle's algorithm off): the same connections, queries
// and failover as postgres.js's own sockets.
describe('connections with Nagle off (noDelay)', () => {
  const databases = testDatabases();
  afterAll(() => databases.dropAll());

  it('runs queries and a COPY FROM STDIN whose rows and end arrive', async () => {
    const { url } = await databases.create({ migrate: false });
    const sql = openDatabase(url, { max: 2, noDelay: true });
    try {
      await sql`create table lines (n int, note text)`;
      const copy = await sql`copy lines (n, note) from stdin`.writable();
      copy.write('1\tone\n2\ttwo\n');
      copy.end('3\tthree\n');
      await new Promise((resolve, reject) => copy.on('finish', resolve).on('error', reject));
      const rows = await sql<{ n: number }[]>`select n from lines order by n`;
      expect(rows.map((r) => r.n)).toEqual([1, 2, 3]);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('tries the hosts of a failover URL in turn', async () => {
    const { url } = await databases.create({ migrate: false });
    const real = new URL(url);
    const dead = await closedPort();
    const failover = url.replace(`@${real.host}`, `@127.0.0.1:${dead},${real.host}`);
    expect(failover).not.toBe(url);
    const sql = openDatabase(failover, { max: 1, noDelay: true });
    try {
      const [row] = await sql<{ port: number }[]>`select inet_server_port() as port`;
      expect(row!.port).toBe(Number(real.port));
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('refuses with the connection error when no host answers', async () => {
    const sql = openDatabase(`postgres://nobody:secret@127.0.0.1:${await closedPort()}/none`, {
      max: 1,
      noDelay: true,
    });
    try {
      await expect(sql`select 1`).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
