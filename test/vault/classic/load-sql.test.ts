import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DumpFilter } from '../../../src/vault/classic/load-sql.ts';

/** What psql receives for `chunks` of a db.sql. */
async function filtered(chunks: (string | Buffer)[]): Promise<string> {
  let out = '';
  const stream = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))).pipe(
    new DumpFilter(),
  );
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

describe('the filter between a classic db.sql and psql', () => {
  it("blanks only pg_dump's own \\restrict header, its last \\unrestrict and ownership statements", async () => {
    const dump = [
      '--',
      '-- PostgreSQL database dump',
      '--',
      '',
      '\\restrict Abc123',
      'CREATE TABLE public.t (x text);',
      'ALTER TABLE public.t OWNER TO trends;',
      'ALTER FUNCTION public.f(a integer, b text) OWNER TO "Some ""Role""";',
      'COPY public.t (x) FROM stdin;',
      'ALTER TABLE public.t OWNER TO trends;',
      '\\! not a command here: COPY data',
      '\\.',
      '\\! touch /tmp/x',
      'select 1 \\g |touch /tmp/x',
      '\\restrict Abc123',
      '',
      '\\unrestrict Abc123',
      '',
      '',
    ].join('\n');
    const lines = (await filtered([dump])).split('\n');
    // Same number of lines, so psql's line numbers are the file's.
    expect(lines.length).toBe(dump.split('\n').length);
    expect(lines).toEqual([
      '--',
      '-- PostgreSQL database dump',
      '--',
      '',
      '',
      'CREATE TABLE public.t (x text);',
      '',
      '',
      'COPY public.t (x) FROM stdin;',
      'ALTER TABLE public.t OWNER TO trends;',
      '\\! not a command here: COPY data',
      '\\.',
      '\\! touch /tmp/x',
      'select 1 \\g |touch /tmp/x',
      '\\restrict Abc123',
      '',
      '',
      '',
      '',
    ]);
  });

  it('passes a \\restrict after SQL and an \\unrestrict that something follows, and keeps split characters', async () => {
    const dump = 'select 1;\n\\restrict k1\n\\unrestrict k1\n';
    expect(await filtered([dump])).toBe(dump);
    const restricted = '\\restrict k2\nselect 1;\n\\unrestrict k2\n\\! touch /tmp/x\n';
    expect(await filtered([restricted])).toBe('\nselect 1;\n\\unrestrict k2\n\\! touch /tmp/x\n');
    const text = Buffer.from("insert into t values ('ünï ✨');\r\nALTER TABLE t OWNER TO x;\r\n");
    expect(await filtered([text.subarray(0, 27), text.subarray(27, 28), text.subarray(28)])).toBe(
      "insert into t values ('ünï ✨');\r\n\n",
    );
  });
});
