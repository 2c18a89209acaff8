import type { Sql } from '../../db/connection.ts';
import { parseLsn } from './lsn.ts';
import { WAL_RECEIVER_NAME } from './receiver.ts';

/** What the primary said at one moment: where its WAL ended, and how far the receiver had it on disk. */
export interface WalSample {
  time: Date;
  currentLsn: bigint;
  flushLsn: bigint | undefined;
  segmentBytes: number;
  /** `wal_block_size`: a WAL page, with its header. */
  pageBytes: number;
}

export async function sampleWal(sql: Sql): Promise<WalSample> {
  const [row] = await sql<{ t: Date; cur: string; flush: string | null; seg: string; page: string }[]>`
    select clock_timestamp() as t, pg_current_wal_lsn()::text as cur,
      (select flush_lsn::text from pg_stat_replication where application_name = ${WAL_RECEIVER_NAME}
        order by flush_lsn desc nulls last limit 1) as flush,
      (select setting from pg_settings where name = 'wal_segment_size') as seg,
      current_setting('wal_block_size') as page`;
  return {
    time: row!.t,
    currentLsn: parseLsn(row!.cur),
    flushLsn: row!.flush ? parseLsn(row!.flush) : undefined,
    segmentBytes: Number(row!.seg),
    pageBytes: Number(row!.page),
  };
}

const MAX_SAMPLES = 7200;

/** Which moment a WAL position covers, from the positions sampled each cycle (the server's clock). */
export class WalClock {
  private readonly samples: Array<{ time: Date; lsn: bigint }> = [];

  add(sample: WalSample): void {
    this.samples.push({ time: sample.time, lsn: sample.currentLsn });
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
  }

  /** The newest sampled moment at which the WAL ended at or before `lsn`. */
  coveredUntil(lsn: bigint | undefined): Date | undefined {
    if (lsn === undefined) return undefined;
    for (let i = this.samples.length - 1; i >= 0; i--) {
      if (this.samples[i]!.lsn <= lsn) return this.samples[i]!.time;
    }
    return undefined;
  }

  /** A record's `coversUntil` for WAL ending at `lsn`, when a sample says. */
  covers(lsn: bigint): { coversUntil?: string } {
    const until = this.coveredUntil(lsn);
    return until ? { coversUntil: until.toISOString() } : {};
  }
}
