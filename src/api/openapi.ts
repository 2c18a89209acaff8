import type { SwaggerOptions } from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.ts';
import { SHARED_SCHEMAS } from './schemas.ts';

/**
 * What each error status means on this API; every error body is `{"error": {"code", "message", …details}}`.
 * A route lists the statuses it can answer with `errors(…)`.
 */
const ERROR_MEANINGS = {
  400: 'The request is malformed: a parameter, header or body field fails its rule (`invalid_request`, `invalid_name`, `invalid_key`, `invalid_if_match`, `empty_upload`, `missing_file`).',
  401: 'No bearer token, or one that is not valid (`unauthorized`).',
  403: 'The client token on a route that needs the admin token (`forbidden`), or a change made with the console session without its X-CSRF-Token header (`csrf`).',
  404: 'No such resource (`not_found`).',
  409: 'The resource changed meanwhile or already exists (`version_conflict` with `currentVersion`, `conflict`).',
  413: 'The body is larger than the configured limit (`payload_too_large`).',
  415: 'The body has a media type this route does not take (`unsupported_media_type`).',
  422: 'The body is well-formed but not acceptable (`invalid_prompt` with `line` and `column`, `unknown_prompt`, `invalid_generation`; `invalid_image`: an upload that is not exactly one intact image within the pixel limit).',
  500: 'An internal error; the message quotes the request id (`internal`).',
  503: 'PostgreSQL, Redis or the object store cannot be reached right now, or the deletion ledger could not be written: retry (`service_unavailable`, `storage_unavailable`, `ledger_unwritten`; `Retry-After` says when).',
} as const;

export type ErrorStatus = keyof typeof ERROR_MEANINGS;

/** Response entries for the error statuses a route answers, each with the shared error body. */
export function errors(...statuses: ErrorStatus[]): Record<number, object> {
  return Object.fromEntries(
    statuses.map((status) => [status, { description: ERROR_MEANINGS[status], $ref: 'Error#' }]),
  );
}

/** Statuses of every route that reads PostgreSQL with a client token. */
export const CLIENT_ERRORS: ErrorStatus[] = [401, 500, 503];
/** Statuses of every route that needs the admin token and reads PostgreSQL. */
export const ADMIN_ERRORS: ErrorStatus[] = [401, 403, 500, 503];

export const CLIENT_SECURITY: Array<Record<string, string[]>> = [
  { clientToken: [] },
  { adminToken: [] },
  { consoleSession: [] },
];
export const ADMIN_SECURITY: Array<Record<string, string[]>> = [{ adminToken: [] }, { consoleSession: [] }];

/** A binary body in the given media types, shown in the document only (the route streams it itself). */
export function binaryBody(types: string[], description: string) {
  return {
    description,
    content: Object.fromEntries(
      types.map((type) => [type, { schema: { type: 'string', format: 'binary' } }]),
    ),
  };
}

/** A schema part the route handles itself (a streamed or YAML body); it appears in the document only. */
export const DOC_ONLY_BODY = 'x-document-body';

function serverUrl(config: Config): string {
  // 0.0.0.0 and :: listen everywhere; a client reaches them on the loopback address of the same machine.
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
}

export function swaggerOptions(config: Config): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'trendgen API',
        version: '1',
        description:
          'Trends, prompts with history, generations, content-addressed objects, user-data deletion and backups. Errors: {"error": {"code", "message"}}.',
        license: { name: 'MIT', url: 'https://opensource.org/license/mit' },
      },
      servers: [
        {
          url: serverUrl(config),
          description: 'This trendgen, as HOST and PORT configure it; behind a proxy, use its address',
        },
      ],
      tags: [
        { name: 'health', description: 'Liveness, readiness and Prometheus metrics; no token needed' },
        { name: 'prompts', description: 'Prompt YAML files and their append-only history' },
        { name: 'trends', description: 'Trends and their example images' },
        { name: 'objects', description: 'Content-addressed images, named by their SHA-256' },
        { name: 'generations', description: "A user's photo and a trend become styled images" },
        { name: 'users', description: "A user's data as a whole" },
        { name: 'backups', description: 'Backup runs, per-target status, restore drills' },
        { name: 'session', description: 'The operator console (/admin) logs in with the admin token' },
        { name: 'operations', description: 'Doctor reports and restore drills, as the console shows them' },
      ],
      security: CLIENT_SECURITY,
      components: {
        securitySchemes: {
          adminToken: {
            type: 'http',
            scheme: 'bearer',
            description:
              'ADMIN_TOKEN (or the one generated into DATA_DIR/secrets/admin-token): opens every route',
          },
          clientToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'API_TOKEN: opens the routes that read, and starting generations',
          },
          consoleSession: {
            type: 'apiKey',
            in: 'cookie',
            name: 'trendgen_session',
            description:
              'The operator console session from POST /api/v1/session: opens what the admin token opens; every change also needs the X-CSRF-Token header',
          },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transform: ({ schema, url }) => {
      const documented = { ...(schema as Record<string, unknown>) };
      if (documented[DOC_ONLY_BODY]) {
        documented.body = documented[DOC_ONLY_BODY];
        delete documented[DOC_ONLY_BODY];
      }
      // Fastify's wildcard `*` is no OpenAPI path parameter: the rest of the path is the object's key.
      if (url.endsWith('/*')) {
        documented.params = {
          type: 'object',
          properties: {
            key: {
              type: 'string',
              description: 'The object key, `<kind>/<aa>/<sha256>.<ext>` (slashes as they are, or as %2F)',
            },
          },
          required: ['key'],
        };
        return { schema: documented as never, url: url.replace(/\*$/, '{key}') };
      }
      return { schema: documented as never, url };
    },
  };
}

/** The schemas routes refer to as `Name#`; the document lists them under components. */
export function addSharedSchemas(app: FastifyInstance): void {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
}
