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
import { ADMIN_ERRORS, ADMIN_SECURITY, CLIENT_ERRORS, DOC_ONLY_BODY, errors } from '../openapi.ts';

const promptName = {
  type: 'string',
  pattern: '^[a-z0-9][a-z0-9_-]{0,63}$',
  description: 'The prompt name, also its file name in PROMPTS_DIR without `.yaml`',
} as const;
// The pattern documents the rule; the prompt module enforces it (400 invalid_name), so validation stays there.
const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', description: promptName.description } },
  required: ['name'],
} as const;
const ifMatch = {
  type: 'object',
  properties: {
    'if-match': {
      type: 'string',
      description:
        'The version you read (`ETag`): the change is refused with 409 when another one is current',
    },
  },
} as const;
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain'];
const saved = (description: string) => ({ description, $ref: 'SavedPrompt#' });

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

const listPromptsSchema = {
  summary: 'Prompts in use',
  operationId: 'listPrompts',
  tags: ['prompts'],
  response: {
    200: {
      description: 'Every prompt with its file state',
      type: 'object',
      properties: { prompts: { type: 'array', items: { $ref: 'PromptSummary#' } } },
      additionalProperties: true,
    },
    ...errors(...CLIENT_ERRORS),
  },
};

const getPromptSchema = {
  summary: 'One prompt in use (?format=yaml for its text)',
  operationId: 'getPrompt',
  tags: ['prompts'],
  params: nameParams,
  querystring: {
    type: 'object',
    properties: {
      format: { type: 'string', enum: ['json', 'yaml'], description: 'yaml: the file as text' },
    },
  },
  response: {
    200: {
      description: 'The prompt; `ETag` is its version',
      content: {
        'application/json': { schema: { $ref: 'Prompt#' } },
        'application/yaml': { schema: { type: 'string' } },
      },
    },
    ...errors(400, 404, ...CLIENT_ERRORS),
  },
};

const putPromptSchema = {
  summary:
    'Create or change a prompt: the YAML text as the body; If-Match: <version> guards against lost updates',
  operationId: 'putPrompt',
  tags: ['prompts'],
  params: nameParams,
  headers: ifMatch,
  [DOC_ONLY_BODY]: {
    required: true,
    description: 'The prompt file, UTF-8 YAML (at most MAX_PROMPT_SIZE)',
    content: Object.fromEntries(YAML_TYPES.map((type) => [type, { schema: { type: 'string' } }])),
  },
  response: {
    200: saved('Changed: a new version (or the same one when the content did not change)'),
    201: saved('Created: version 1'),
    ...errors(400, 409, 413, 415, 422, ...ADMIN_ERRORS),
  },
  security: ADMIN_SECURITY,
};

const listPromptVersionsSchema = {
  summary: 'The history of a prompt',
  operationId: 'listPromptVersions',
  tags: ['prompts'],
  params: nameParams,
  response: {
    200: {
      description: 'Every version, oldest first',
      type: 'object',
      properties: { versions: { type: 'array', items: { $ref: 'PromptVersionInfo#' } } },
      additionalProperties: true,
    },
    ...errors(400, 404, ...CLIENT_ERRORS),
  },
};

const getPromptVersionSchema = {
  summary: 'One version of a prompt',
  operationId: 'getPromptVersion',
  tags: ['prompts'],
  params: {
    type: 'object',
    properties: {
      name: { type: 'string', description: promptName.description },
      version: { type: 'integer', minimum: 1 },
    },
    required: ['name', 'version'],
  },
  response: {
    200: { description: 'The version with its content', $ref: 'PromptVersion#' },
    ...errors(400, 404, ...CLIENT_ERRORS),
  },
};

const restorePromptVersionSchema = {
  summary: 'Make an old version current again (recorded as a new version with origin "restore")',
  operationId: 'restorePromptVersion',
  tags: ['prompts'],
  params: nameParams,
  headers: ifMatch,
  body: {
    type: 'object',
    properties: {
      version: { type: 'integer', minimum: 1, description: 'the version to bring back' },
    },
    required: ['version'],
  },
  response: {
    200: saved('Restored: the new current version'),
    ...errors(400, 404, 409, 415, 422, ...ADMIN_ERRORS),
  },
  security: ADMIN_SECURITY,
};

export function promptRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  const client = requireRole(deps.tokens, 'client');
  const dir = deps.config.promptsDir;
  return async (app) => {
    app.get(
      '/prompts',
      {
        preHandler: client,
        schema: listPromptsSchema,
      },
      async () => ({
        prompts: await listPrompts(deps.sql),
      }),
    );

    app.get(
      '/prompts/:name',
      {
        preHandler: client,
        schema: getPromptSchema,
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
        schema: putPromptSchema,
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
        schema: listPromptVersionsSchema,
      },
      async (request) => ({
        versions: await listVersions(deps.sql, (request.params as { name: string }).name),
      }),
    );

    app.get(
      '/prompts/:name/versions/:version',
      {
        preHandler: client,
        schema: getPromptVersionSchema,
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
        schema: restorePromptVersionSchema,
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
