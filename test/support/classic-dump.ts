import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { findPostgresBinary } from '../../src/embedded/binaries.ts';
import { libpqConnection } from '../../src/vault/sources/postgres-client.ts';
import { runCli } from './cli.ts';

/** A plain-SQL dump of `url` by this machine's pg_dump, as the classic script made it (`pg_dump -d "$DB"`). */
export function plainDump(url: string): string {
  const conn = libpqConnection(url);
  return execFileSync(findPostgresBinary('pg_dump'), ['--no-password', '-d', conn.dbname], {
    env: conn.env,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** The same dump as pg_dump wrote it before `\restrict` (before 13.22, 14.19, 15.14, 16.10, 17.6). */
export function withoutRestrict(dump: string): string {
  return dump
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line))
    .join('\n');
}

/** `dump` with `lines` inserted before its first COPY: every table exists by then, none has rows yet. */
export function inject(dump: string, lines: string): string {
  const at = dump.indexOf('\nCOPY ');
  if (at < 0) throw new Error('The dump has no COPY to inject before.');
  return `${dump.slice(0, at + 1)}${lines}\n${dump.slice(at + 1)}`;
}

/**
 * A classic `trend_generator_backup_YYYYMMDD_HHMMSS.tar.gz` holding `sql` as db.sql.gz and one prompt file,
 * imported with `trendgen import`; returns the snapshot id.
 */
export async function importClassicSql(
  dir: string,
  stamp: string,
  sql: string,
  env: Record<string, string>,
): Promise<string> {
  const name = `trend_generator_backup_${stamp}`;
  const folder = path.join(dir, name);
  const project = path.join(dir, `${name}-project`);
  mkdirSync(path.join(project, 'prompts'), { recursive: true });
  mkdirSync(path.join(project, 'data/trend_examples'), { recursive: true });
  mkdirSync(path.join(project, 'data/generated_images'), { recursive: true });
  writeFileSync(
    path.join(project, 'prompts/ghibli.yaml'),
    'name: ghibli\ntemplate: "{photo} in Ghibli style"\n',
  );
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'db.sql.gz'), gzipSync(sql));
  execFileSync('tar', ['-czf', path.join(folder, 'data.tar.gz'), '-C', project, 'prompts', 'data']);
  const archive = path.join(dir, `${name}.tar.gz`);
  execFileSync('tar', ['-czf', archive, '-C', dir, name]);
  rmSync(folder, { recursive: true });
  rmSync(project, { recursive: true });
  const imported = await runCli(['import', archive, '--json'], env);
  if (imported.code !== 0) throw new Error(`import exited ${imported.code}: ${imported.stderr}`);
  return (JSON.parse(imported.stdout) as { snapshotId: string }).snapshotId;
}
