import type { FastifyPluginAsync } from 'fastify';
import { deleteUserData, userDataSummary } from '../../generation/user-data.ts';
import { syncLedgerEverywhere, syncLocalLedger } from '../../vault/ledger.ts';
import { requireRole } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { ADMIN_ERRORS, ADMIN_SECURITY, errors } from '../openapi.ts';

const userParams = {
  type: 'object',
  properties: { user: { type: 'string', description: 'The user id generations were made for' } },
  required: ['user'],
};

/** A user's data as a whole: deleting it (I3). */
export function userRoutes(deps: ApiDeps): FastifyPluginAsync {
  const admin = requireRole(deps.tokens, 'admin');
  return async (app) => {
    app.get(
      '/users/:user/data',
      {
        preHandler: admin,
        schema: {
          summary: "What deleting a user's data would remove",
          operationId: 'getUserData',
          tags: ['users'],
          params: userParams,
          response: {
            200: {
              description:
                'Live generations, and the objects (with their bytes) no other user or trend example shares',
              type: 'object',
              properties: {
                user: { type: 'string' },
                generations: { type: 'integer' },
                objects: { type: 'integer' },
                bytes: { type: 'integer' },
                recent: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      id: { type: 'string' },
                      status: { type: 'string' },
                      trend: { type: 'string' },
                      createdAt: { type: 'string', format: 'date-time' },
                    },
                    additionalProperties: true,
                  },
                },
              },
              required: ['user', 'generations', 'objects', 'bytes', 'recent'],
              additionalProperties: true,
            },
            ...errors(...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request) => await userDataSummary(deps.sql, (request.params as { user: string }).user),
    );

    app.delete(
      '/users/:user/data',
      {
        preHandler: admin,
        schema: {
          summary: "Delete a user's photos and results (recorded; re-applied after a restore)",
          operationId: 'deleteUserData',
          tags: ['users'],
          params: userParams,
          response: {
            200: {
              description:
                'Deleted: in PostgreSQL and in the local deletion ledger (503 ledger_unwritten otherwise: repeat)',
              $ref: 'UserDeletion#',
            },
            ...errors(...ADMIN_ERRORS),
          },
          security: ADMIN_SECURITY,
        },
      },
      async (request) => {
        const user = (request.params as { user: string }).user;
        const deletion = await deleteUserData(deps.sql, user);
        // I3: the record must outlive this machine before the answer: the local target's ledger first.
        try {
          await syncLocalLedger(deps.config, deps.sql);
        } catch (error) {
          throw new HttpError(
            503,
            'ledger_unwritten',
            `The deletion of ${user}'s data is recorded in the database but not yet in the backup ledger in ${deps.config.backup.dir} (${(error as Error).message}); repeat the request to complete it.`,
          );
        }
        // Offsite targets follow; whatever this cannot write, the next backup does.
        void syncLedgerEverywhere(deps.config, deps.sql)
          .then((results) => {
            for (const r of results.filter((x) => x.error)) {
              request.log.warn(
                { target: r.target, error: r.error },
                'deletion ledger not written; the next backup will',
              );
            }
          })
          .catch((error) => request.log.warn({ err: error }, 'deletion ledger sync failed'));
        return { ...deletion, requestedAt: deletion.requestedAt.toISOString() };
      },
    );
  };
}
