import { stat } from 'node:fs/promises';
import { adminTokenPath } from '../../config/config.ts';
import { type DoctorCheck, ok, warn } from './types.ts';

export function adminChecks(): DoctorCheck[] {
  return [
    {
      id: 'admin.token',
      run: async (ctx) => {
        if (ctx.config.adminToken) return ok('ADMIN_TOKEN is set');
        const file = adminTokenPath(ctx.config);
        const info = await stat(file).catch(() => undefined);
        if (!info) {
          return warn(
            `ADMIN_TOKEN is unset and ${file} does not exist yet`,
            'set ADMIN_TOKEN, or start the API once (trendgen up) to generate the file',
          );
        }
        const mode = info.mode & 0o777;
        // Anyone who can read the token can restore over live data or delete users' photos.
        if (mode & 0o077) {
          return warn(
            `the generated admin token ${file} has mode ${mode.toString(8).padStart(4, '0')}, readable beyond its owner: other users of this machine may read it`,
            `chmod 600 ${file}`,
          );
        }
        return ok(`the admin token is in ${file} (mode ${mode.toString(8).padStart(4, '0')})`);
      },
    },
  ];
}
