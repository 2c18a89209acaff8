/** The classic backup format (`trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz`): export, import, restore. */

export * from './export.ts';
export * from './format.ts';
export * from './import.ts';
export * from './restore.ts';
export * from './safe-extract.ts';
