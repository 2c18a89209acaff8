import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createTestDatabase, type TestDatabase, testRedisUrl } from './database.ts';
import { startUp, type UpProcess } from './processes.ts';
import { tempDir } from './temp.ts';

export interface ServedApi {
  baseUrl: string;
  db: TestDatabase;
  dirs: { data: string; prompts: string; backups: string };
  admin: Record<string, string>;
  stop(): Promise<void>;
}

/** `trendgen serve` as a real process on a fresh database and the run's Redis, answering on a free port. */
export async function startServedApi(): Promise<ServedApi> {
  const temp = tempDir('served');
  const db = await createTestDatabase();
  const adminToken = randomBytes(24).toString('hex');
  const dirs = {
    data: path.join(temp.dir, 'data'),
    prompts: path.join(temp.dir, 'prompts'),
    backups: path.join(temp.dir, 'backups'),
  };
  let serve: UpProcess | undefined;
  try {
    serve = await startUp(
      {
        DATABASE_URL: db.url,
        REDIS_URL: testRedisUrl(),
        DATA_DIR: dirs.data,
        PROMPTS_DIR: dirs.prompts,
        BACKUP_DIR: dirs.backups,
        ADMIN_TOKEN: adminToken,
      },
      { command: 'serve' },
    );
  } catch (error) {
    await db.drop();
    temp.remove();
    throw error;
  }
  const running = serve;
  return {
    baseUrl: running.baseUrl,
    db,
    dirs,
    admin: { authorization: `Bearer ${adminToken}` },
    stop: async () => {
      await running.stop();
      await db.drop();
      temp.remove();
    },
  };
}
