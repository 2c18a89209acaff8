/**
 * What each source records about itself in a snapshot, so that a restore (and a drill) can prove it brought
 * back exactly what was backed up (I7).
 */

export interface TableFacts {
  rows: number;
  /** Order-independent digest of the table's rows (see postgres.ts); equal contents give equal digests. */
  hash: string;
}

export interface PostgresFacts {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  /** `schema.table` → facts, for every ordinary table in the dump. */
  tables: Record<string, TableFacts>;
}

export interface PostgresDump {
  facts: PostgresFacts;
  /** Keys of live objects (`objects.deleted_at is null`) in the same database snapshot as the dump (I8). */
  liveObjectKeys: string[];
}

export interface RedisFacts {
  /** `rdb`: an RDB file taken over the replication protocol; `dump`: one DUMP payload per key. */
  method: 'rdb' | 'dump';
  keys: number;
  /** Logical databases that held keys. */
  dbs: number[];
  /** Keys per logical database (`"0"` → count) in the backup: what a restore is verified against. */
  keysPerDb: Record<string, number>;
  /** When the dump was taken (ms since the epoch): TTLs in `keys.jsonl` are stated as of this moment. */
  takenAt: number;
}
