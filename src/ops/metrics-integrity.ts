import { Counter, Gauge, type Registry } from 'prom-client';
import type { Sql } from '../db/connection.ts';
import { objectDamageDetections, unrepairedObjectDamage } from '../objects/integrity.ts';

/** Damaged objects, read from PostgreSQL at scrape time so that every replica reports the same counts. */
export function registerIntegrityMetrics(registry: Registry, sql: Sql): void {
  new Counter({
    name: 'trendgen_object_damage_detections_total',
    help: 'Reads of a stored object whose bytes did not match its SHA-256, by who found it: read, scrub, backup or upload.',
    labelNames: ['found_by'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const foundBy of ['read', 'scrub', 'backup', 'upload']) this.inc({ found_by: foundBy }, 0);
      for (const [foundBy, n] of await objectDamageDetections(sql)) this.inc({ found_by: foundBy }, n);
    },
  });
  new Gauge({
    name: 'trendgen_objects_damaged',
    help: 'Objects whose stored copy is damaged and not repaired yet (re-upload, or the scrub repairs from a backup).',
    registers: [registry],
    async collect() {
      this.set((await unrepairedObjectDamage(sql)).length);
    },
  });
}
