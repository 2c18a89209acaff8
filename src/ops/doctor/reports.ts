import type { Sql } from '../../db/connection.ts';
import type { DoctorReport } from './types.ts';

/** The scheduler's newest doctor report, kept in PostgreSQL so that every replica's /metrics reads the same. */
export async function saveDoctorReport(sql: Sql, report: DoctorReport): Promise<void> {
  await sql`insert into doctor_reports (id, report) values (1, ${sql.json(report as never)})
    on conflict (id) do update set report = excluded.report, taken_at = now()`;
}

/** The statuses of the last report's checks; none when no report was taken (or the table is not there yet). */
export async function lastDoctorStatuses(sql: Sql): Promise<string[]> {
  const [present] = await sql`select to_regclass('doctor_reports') is not null as ok`;
  if (!present?.ok) return [];
  const [row] = await sql`select report from doctor_reports where id = 1`;
  const checks = (row?.report as { checks?: Array<{ status: string }> } | undefined)?.checks ?? [];
  return checks.map((check) => check.status);
}

/** The newest report with when it was taken; undefined before the scheduler's first. */
export async function latestDoctorReport(
  sql: Sql,
): Promise<{ takenAt: Date; report: DoctorReport } | undefined> {
  const [row] = await sql<{ takenAt: Date; report: DoctorReport }[]>`
    select taken_at as "takenAt", report from doctor_reports where id = 1`;
  return row;
}
