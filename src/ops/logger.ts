import pino, { type DestinationStream, type Logger } from 'pino';
import { pathOnly, scrubText } from '../lib/redact.ts';

/** JSON logs on stderr. Tokens, passwords and URLs with credentials never reach them. */
export function createLogger(level: string, name = 'trendgen', destination?: DestinationStream): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          '*.password',
          '*.token',
          '*.databaseUrl',
          '*.redisUrl',
          'config.adminToken',
          'config.apiToken',
        ],
        censor: '[redacted]',
      },
      // Strings logged at the top level (a message, a URL field) are scrubbed of known secrets and URL passwords.
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubText(arg) : arg));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
      formatters: {
        log: (object) =>
          Object.fromEntries(
            Object.entries(object).map(([key, value]) => [
              key,
              typeof value === 'string' ? scrubText(value) : value,
            ]),
          ),
      },
      serializers: {
        // Fastify's request log without the query string: a client's `?token=` never reaches the log.
        req: (request: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: request.method,
          url: pathOnly(request.url ?? ''),
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort,
        }),
        err: (error: Error) => ({
          ...pino.stdSerializers.err(error),
          message: scrub(error.message),
          stack: scrub(error.stack ?? ''),
        }),
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** Removes credentials from free text (driver errors sometimes quote the connection string). */
export function scrub(text: string): string {
  return scrubText(text);
}
