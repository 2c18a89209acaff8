import type { FastifyPluginAsync } from 'fastify';
import {
  getPrompt,
  getVersion,
  listPrompts,
  listVersions,
  PromptValidationError,
  restoreVersion,
  savePrompt,
} from '../../prompts/index.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';

const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;

function ifMatchVersion(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = String(header).replace(/^W\//, '').replaceAll('"', '').trim();
  if (!/^\d+$/.test(value))
    throw new HttpError(400, 'invalid_if_match', 'If-Match must be a prompt version number.');
  return Number(value);
}

/**
 * The body as UTF-8 text, or PromptValidationError at the first byte that is not UTF-8: decoding with
 * replacement characters would store different bytes than the client sent, silently.
 */
export function decodePromptBody(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  const again = Buffer.from(text, 'utf8');
  if (again.equals(bytes)) return text;
  let differs = 0;
  while (differs < bytes.length && bytes[differs] === again[differs]) differs++;
  // The character (in the decoded text) whose bytes hold the first difference: a replacement character.
  let offset = 0;
  let before = '';
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (offset + size > differs) break;
    offset += size;
    before += char;
  }
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  throw new PromptValidationError(`the prompt is not UTF-8 text (byte ${offset + 1})`, line, column);
}

export function promptRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  const dir = deps.config.promptsDir;
  return async (app) => {
    app.get(
      '/prompts',
      { preHandler: client, schema: { summary: 'Prompts in use', tags: ['prompts'] } },
      async () => ({
        prompts: await listPrompts(deps.sql),
      }),
    );

    app.get(
      '/prompts/:name',
      {
        preHandler: client,
        schema: {
          summary: 'One prompt in use (?format=yaml for its text)',
          tags: ['prompts'],
          params: nameParams,
          querystring: { type: 'object', properties: { format: { type: 'string', enum: ['json', 'yaml'] } } },
        },
      },
      async (request, reply) => {
        const prompt = await getPrompt(deps.sql, (request.params as { name: string }).name);
        if (prompt.version === null) {
          throw new HttpError(
            404,
            'not_found',
            `The prompt ${prompt.name} has no valid version yet: fix its file.`,
          );
        }
        reply.header('etag', `"${prompt.version}"`);
        if ((request.query as { format?: string }).format === 'yaml') {
          return reply.type('application/yaml; charset=utf-8').send(prompt.content);
        }
        return prompt;
      },
    );

    app.put(
      '/prompts/:name',
      {
        preHandler: admin,
        schema: {
          summary:
            'Create or change a prompt: the YAML text as the body; If-Match: <version> guards against lost updates',
          tags: ['prompts'],
          params: nameParams,
        },
      },
      async (request, reply) => {
        if (typeof request.body !== 'string') {
          throw new HttpError(
            415,
            'unsupported_media_type',
            'Send the prompt as YAML text with Content-Type: application/yaml.',
          );
        }
        const result = await savePrompt(
          deps.sql,
          dir,
          (request.params as { name: string }).name,
          request.body,
          {
            origin: 'api',
            ifMatch: ifMatchVersion(request.headers['if-match']),
            maxBytes: deps.config.limits.maxPromptBytes,
          },
        );
        reply.header('etag', `"${result.version}"`);
        return reply.status(result.created && result.version === 1 ? 201 : 200).send(result);
      },
    );
  };
}

/** A prompt's history: its versions, one version, and making an old version current again. */
export function promptHistoryRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  const dir = deps.config.promptsDir;
  return async (app) => {
    app.get(
      '/prompts/:name/versions',
      {
        preHandler: client,
        schema: { summary: 'The history of a prompt', tags: ['prompts'], params: nameParams },
      },
      async (request) => ({
        versions: await listVersions(deps.sql, (request.params as { name: string }).name),
      }),
    );

    app.get(
      '/prompts/:name/versions/:version',
      {
        preHandler: client,
        schema: {
          summary: 'One version of a prompt',
          tags: ['prompts'],
          params: {
            type: 'object',
            properties: { name: { type: 'string' }, version: { type: 'integer', minimum: 1 } },
            required: ['name', 'version'],
          },
        },
      },
      async (request) => {
        const { name, version } = request.params as { name: string; version: number };
        return await getVersion(deps.sql, name, version);
      },
    );

    app.post(
      '/prompts/:name/restore',
      {
        preHandler: admin,
        schema: {
          summary: 'Make an old version current again (recorded as a new version with origin "restore")',
          tags: ['prompts'],
          params: nameParams,
          body: {
            type: 'object',
            properties: { version: { type: 'integer', minimum: 1 } },
            required: ['version'],
          },
        },
      },
      async (request, reply) => {
        const { name } = request.params as { name: string };
        const { version } = request.body as { version: number };
        const result = await restoreVersion(deps.sql, dir, name, version, {
          ifMatch: ifMatchVersion(request.headers['if-match']),
          maxBytes: deps.config.limits.maxPromptBytes,
        });
        reply.header('etag', `"${result.version}"`);
        return result;
      },
    );
  };
}
