import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findRedisBinary } from '../../src/embedded/binaries.ts';
import { freePort, isAlive, sleep, waitFor, waitForExit } from '../../src/lib/process.ts';
import { createRedisClient } from '../../src/lib/redis-client.ts';

/**
 * Real redis-server processes for the Redis tests: servers (plain or TLS only), replicas and Sentinels, each a
 * child of the test in its own folder on a free port, SIGKILLed and started again as a failure would.
 */

export interface TlsFiles {
  /** The CA that signed the server's certificate. */
  ca: string;
  /** A CA that signed nothing here. */
  otherCa: string;
  cert: string;
  key: string;
}

/** A CA and a server certificate for 127.0.0.1 and localhost (subjectAltName), and a second, unrelated CA. */
export function makeCertificates(dir: string): TlsFiles {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => {
    const run = spawnSync('openssl', args, { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
  };
  for (const name of ['ca', 'other-ca'])
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=trendgen test ${name}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.pem`),
    );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
  );
  writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-days',
    '2',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-extfile',
    file('server.ext'),
    '-out',
    file('server.pem'),
  );
  return {
    ca: file('ca.pem'),
    otherCa: file('other-ca.pem'),
    cert: file('server.pem'),
    key: file('server.key'),
  };
}

export class RedisProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
    /** How to reach it to ask whether it is up. */
    private readonly url: string,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server; `replicaOf`: as a replica of the server on that port, as a restarted node rejoins. */
  async start(replicaOf?: number): Promise<void> {
    const args = [...this.args, ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : [])];
    this.child = spawn(findRedisBinary('redis-server'), args, {
      cwd: this.dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    this.child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const child = this.child;
    await waitFor(
      `${this.name} to answer on port ${this.port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`${this.name} exited: ${stderr}`);
        const client = createRedisClient(this.url, {
          lazyConnect: true,
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
          enableReadyCheck: false,
        });
        client.on('error', () => {});
        try {
          await client.connect();
          return (await client.ping()) === 'PONG' ? true : undefined;
        } catch {
          return undefined;
        } finally {
          client.disconnect();
        }
      },
      15_000,
      50,
    );
  }

  /** INFO <section>, asked of this server alone. */
  async info(section: string): Promise<string> {
    const client = createRedisClient(this.url, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return await client.info(section);
    } finally {
      client.disconnect();
    }
  }

  /** SIGKILL, as a crashed machine. */
  async kill(): Promise<void> {
    const pid = this.child?.pid;
    if (!pid || !isAlive(pid)) return;
    process.kill(pid, 'SIGKILL');
    await waitForExit(pid, 10_000);
  }
}

const quiet = ['--save', '', '--loglevel', 'warning'];

/** A TLS-only server (`--port 0`): AOF on, a password, clients not asked for certificates. */
export async function startTlsRedis(dir: string, tls: TlsFiles, password: string, bind = '127.0.0.1') {
  const port = await freePort();
  const server = new RedisProcess(
    'TLS Redis',
    port,
    dir,
    [
      ...['--port', '0', '--tls-port', String(port), '--bind', ...bind.split(' ')],
      ...[
        '--tls-cert-file',
        tls.cert,
        '--tls-key-file',
        tls.key,
        '--tls-ca-cert-file',
        tls.ca,
        '--tls-auth-clients',
        'no',
      ],
      ...[
        '--requirepass',
        password,
        '--appendonly',
        'yes',
        '--dir',
        dir,
        '--logfile',
        path.join(dir, 'redis.log'),
      ],
      ...quiet,
    ],
    `rediss://:${password}@127.0.0.1:${port}/0?tls_ca=${encodeURIComponent(tls.ca)}`,
  );
  await server.start();
  return server;
}

/** One Sentinel that speaks TLS only and reaches the master over TLS (quorum 1: it watches, never fails over). */
export async function startTlsSentinel(dir: string, tls: TlsFiles, masterPort: number, password: string) {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      ...[
        'port 0',
        `tls-port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `logfile ${path.join(dir, 'sentinel.log')}`,
      ],
      ...[`tls-cert-file ${tls.cert}`, `tls-key-file ${tls.key}`, `tls-ca-cert-file ${tls.ca}`],
      ...['tls-auth-clients no', 'tls-replication yes'],
      ...[
        `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`,
        `sentinel auth-pass mymaster ${password}`,
        '',
      ],
    ].join('\n'),
  );
  const sentinel = new RedisProcess(
    'TLS Sentinel',
    port,
    dir,
    [conf, '--sentinel'],
    `rediss://127.0.0.1:${port}/0?tls_ca=${encodeURIComponent(tls.ca)}`,
  );
  await sentinel.start();
  return sentinel;
}

export interface SentinelSet {
  master: RedisProcess;
  replicas: RedisProcess[];
  sentinels: RedisProcess[];
  /** What the application is given: REDIS_URL (the password and database only), REDIS_SENTINELS and their password. */
  env: Record<string, string>;
  /** The application's connection string, as its configuration composes it. */
  url: string;
  /** The port of the master the Sentinels name now. */
  masterPort(): Promise<number>;
  /** Until every server but the master replicates it with its link up: a failover then has an up-to-date replica to promote. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A master, `replicas` replicas and `sentinels` Sentinels (quorum 2), every one AOF on; a master is declared
 * down after `downAfterMs` without an answer. Resolves once every Sentinel knows the replicas and the others.
 */
export async function startSentinelSet(
  root: string,
  options: {
    password: string;
    sentinelPassword: string;
    replicas?: number;
    sentinels?: number;
    downAfterMs?: number;
  },
): Promise<SentinelSet> {
  const { password, sentinelPassword } = options;
  const serverArgs = (port: number, dir: string) => [
    ...['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--masterauth', password],
    ...['--appendonly', 'yes', '--dir', dir, '--logfile', path.join(dir, 'redis.log'), ...quiet],
    // A replica that (re)joins is synced at once, not after the default 5 s wait for others to join it.
    ...['--repl-diskless-sync-delay', '0'],
  ];
  const local = (port: number, secret: string) => `redis://:${secret}@127.0.0.1:${port}/0`;
  const masterPort = await freePort();
  const masterDir = path.join(root, 'master');
  const master = new RedisProcess(
    'master',
    masterPort,
    masterDir,
    serverArgs(masterPort, masterDir),
    local(masterPort, password),
  );
  await master.start();
  const replicas: RedisProcess[] = [];
  for (let i = 0; i < (options.replicas ?? 2); i++) {
    const port = await freePort();
    const dir = path.join(root, `replica-${i}`);
    replicas.push(new RedisProcess(`replica ${i}`, port, dir, serverArgs(port, dir), local(port, password)));
  }
  await Promise.all(replicas.map((replica) => replica.start(masterPort)));
  const sentinels: RedisProcess[] = [];
  for (let i = 0; i < (options.sentinels ?? 3); i++) {
    const port = await freePort();
    const dir = path.join(root, `sentinel-${i}`);
    mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `logfile ${path.join(dir, 'sentinel.log')}`,
        `requirepass ${sentinelPassword}`,
        `sentinel monitor mymaster 127.0.0.1 ${masterPort} 2`,
        `sentinel auth-pass mymaster ${password}`,
        `sentinel down-after-milliseconds mymaster ${options.downAfterMs ?? 1000}`,
        // A Sentinel does not fail the same master over again within twice this: short, for three in a row.
        'sentinel failover-timeout mymaster 2000',
        'sentinel parallel-syncs mymaster 2',
        '',
      ].join('\n'),
    );
    sentinels.push(
      new RedisProcess(`sentinel ${i}`, port, dir, [conf, '--sentinel'], local(port, sentinelPassword)),
    );
  }
  await Promise.all(sentinels.map((sentinel) => sentinel.start()));
  const askSentinel = async (sentinel: RedisProcess, ...args: string[]) => {
    const client = createRedisClient(local(sentinel.port, sentinelPassword), { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    try {
      return (await client.call('SENTINEL', ...args)) as unknown;
    } finally {
      client.disconnect();
    }
  };
  // A failover needs the Sentinels to know one another (they meet through the master) and the replicas.
  await waitFor(
    'every Sentinel to know the replicas and the other Sentinels',
    async () => {
      for (const sentinel of sentinels) {
        const others = (await askSentinel(sentinel, 'sentinels', 'mymaster')) as unknown[];
        const known = (await askSentinel(sentinel, 'replicas', 'mymaster')) as unknown[];
        if (others.length < sentinels.length - 1 || known.length < replicas.length) return undefined;
      }
      return true;
    },
    30_000,
    200,
  );
  const env = {
    REDIS_URL: `redis://:${password}@/0`,
    REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    REDIS_SENTINEL_PASSWORD: sentinelPassword,
  };
  const masterPortNow = async () => {
    for (const sentinel of sentinels) {
      try {
        const reply = (await askSentinel(sentinel, 'get-master-addr-by-name', 'mymaster')) as string[];
        return Number(reply[1]);
      } catch {
        // Ask the next one.
      }
    }
    throw new Error('no Sentinel answered');
  };
  const url = `redis+sentinel://:${password}@${env.REDIS_SENTINELS}/mymaster/0?sentinel_password=${sentinelPassword}`;
  return {
    master,
    replicas,
    sentinels,
    env,
    url,
    masterPort: masterPortNow,
    waitHealthy: async (timeoutMs = 30_000) => {
      await waitFor(
        'every replica to follow the master and the Sentinels to see it healthy',
        async () => {
          const port = await masterPortNow();
          for (const server of [master, ...replicas]) {
            if (server.port === port) continue;
            const info = await server.info('replication').catch(() => '');
            if (!info.includes(`master_port:${port}\r`) || !info.includes('master_link_status:up'))
              return undefined;
          }
          return true;
        },
        timeoutMs,
        100,
      );
    },
    stop: async () => {
      for (const server of [...sentinels, ...replicas, master]) await server.kill();
      await sleep(0);
    },
  };
}
