import type { Config } from '../config/config.ts';
import type { Sql } from '../db/connection.ts';
import { unrepairedObjectDamage } from '../objects/integrity.ts';
import { invalidPromptFiles } from '../prompts/index.ts';
import { backupFreshness, latestDrill, latestFinishedRun } from '../vault/catalog.ts';

export interface Condition {
  /** Stable identity of the incident, e.g. `backup-stale:s3`. */
  key: string;
  summary: string;
}

export interface AlertEvent {
  event: 'firing' | 'resolved';
  key: string;
  summary: string;
  /** Slack and Telegram show this field as the message. */
  text: string;
  service: 'trendgen';
  at: string;
}

export type Send = (event: AlertEvent) => Promise<void>;

/** What is wrong right now, read from the catalog tables every process shares. */
export async function currentConditions(sql: Sql, config: Config): Promise<Condition[]> {
  const conditions: Condition[] = [];
  const last = await latestFinishedRun(sql);
  if (last) {
    if (last.status === 'failed')
      conditions.push({
        key: 'backup-failed',
        summary: `The last backup failed: ${last.error ?? 'no target could be written'}`,
      });
    for (const outcome of last.targets.filter((o) => !o.ok)) {
      conditions.push({
        key: `backup-failed:${outcome.name}`,
        summary: `The last backup did not reach ${outcome.name}: ${outcome.error ?? 'unknown error'}`,
      });
    }
  }
  // Before the first backup has run there is nothing to be stale yet; doctor says so instead.
  const freshness = await backupFreshness(sql, config);
  if (freshness.intervalMs !== undefined && last) {
    const interval = freshness.intervalMs / 1000;
    for (const { target, ageMs, stale } of freshness.targets) {
      if (stale) {
        conditions.push({
          key: `backup-stale:${target}`,
          summary: `No backup has reached ${target} ${ageMs === undefined ? 'yet' : `for ${Math.round(ageMs / 60_000)} minutes`}; the schedule expects one every ${Math.round(interval / 60)} minutes.`,
        });
      }
    }
  }
  const drill = await latestDrill(sql);
  if (drill?.status === 'failed')
    conditions.push({ key: 'drill-failed', summary: `The last restore drill failed: ${drill.reason}` });
  for (const damage of await unrepairedObjectDamage(sql)) {
    conditions.push({
      key: `object-damaged:${damage.key}`,
      summary: `The stored copy of object ${damage.key} is damaged (its bytes no longer match its SHA-256; found by ${damage.foundBy}) and it could not be repaired from a backup: upload it again or restore it.`,
    });
  }
  for (const { name, error } of await invalidPromptFiles(sql)) {
    conditions.push({
      key: `prompt-invalid:${name}`,
      summary: `The prompt file ${name}.yaml is invalid (${error?.message ?? 'unreadable'}); its last valid version stays in use.`,
    });
  }
  return conditions;
}

/**
 * Compares what is wrong now with the open incidents: a new condition opens an incident and sends one
 * alert; a condition that went away closes it and sends one "resolved". A failed send is retried on the
 * next evaluation (the incident stays unnotified), so a webhook outage loses no alert.
 */
export async function evaluateAlerts(
  sql: Sql,
  conditions: Condition[],
  send: Send,
): Promise<{ fired: string[]; resolved: string[] }> {
  const open = new Map(
    (await sql`select key, summary, notified from alert_incidents`).map((r) => [r.key as string, r]),
  );
  const fired: string[] = [];
  const resolved: string[] = [];
  const now = new Date().toISOString();
  for (const condition of conditions) {
    const incident = open.get(condition.key);
    if (!incident)
      await sql`insert into alert_incidents (key, summary) values (${condition.key}, ${condition.summary}) on conflict do nothing`;
    if (incident?.notified) continue;
    await send({
      event: 'firing',
      key: condition.key,
      summary: condition.summary,
      text: `🔴 trendgen: ${condition.summary}`,
      service: 'trendgen',
      at: now,
    });
    await sql`update alert_incidents set notified = true where key = ${condition.key}`;
    fired.push(condition.key);
  }
  const current = new Set(conditions.map((c) => c.key));
  for (const [key, incident] of open) {
    if (current.has(key)) continue;
    if (incident.notified) {
      await send({
        event: 'resolved',
        key,
        summary: incident.summary as string,
        text: `✅ trendgen resolved: ${incident.summary}`,
        service: 'trendgen',
        at: now,
      });
    }
    await sql`delete from alert_incidents where key = ${key}`;
    resolved.push(key);
  }
  return { fired, resolved };
}

/** POSTs the event as JSON; a non-2xx answer or a timeout is an error (the caller retries later). */
export function webhookSender(url: string, timeoutMs = 10_000): Send {
  return async (event) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) throw new Error(`The alert webhook answered ${response.status}.`);
  };
}
