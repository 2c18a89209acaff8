import pino, { type DestinationStream, type Logger } from 'pino';

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
      serializers: {
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

/** Removes credentials from URLs inside free text (driver errors sometimes quote the connection string). */
export function scrub(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]+@/gi, '$1:[redacted]@');
}
