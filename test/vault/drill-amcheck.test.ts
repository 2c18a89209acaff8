import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { startVaultEnv, type VaultEnv } from '../support/vault-env.ts';

/** The drill runs `pg_amcheck --heapallindexed` on the restored database; its finding fails the drill. */
describe('I7: drills check what PostgreSQL checks', () => {
  let vault: VaultEnv;
  beforeAll(async () => {
    vault = await startVaultEnv('drill-amcheck');
    // An index over a function that claims to be immutable and is not: every rebuild of the index differs
    // from what the heap gives now, which only an index-against-heap check sees (row counts and digests agree).
    await vault.db.sql.unsafe(`
      create function public.unstable(v int) returns int language plpgsql immutable
        as $f$ begin return v + (random() * 1000000)::int; end $f$;
      create table public.lying (v int);
      insert into public.lying select generate_series(1, 200);
      create index lying_unstable on public.lying (public.unstable(v));`);
    const backup = await runCli(['backup'], vault.env);
    expect(backup.code, backup.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => vault?.close());

  it('fails with the tool finding when an index does not match its heap', async () => {
    const drill = await runCli(['drill', '--json'], vault.env);
    expect(drill.code, drill.stdout + drill.stderr).toBe(1);
    const report = JSON.parse(drill.stdout) as {
      status: string;
      checks: Array<{ name: string; ok: boolean; detail: string }>;
    };
    expect(report.status).toBe('failed');
    const amcheck = report.checks.find((c) => c.name === 'amcheck')!;
    expect(amcheck.ok).toBe(false);
    expect(amcheck.detail).toMatch(/lying_unstable/);
    expect(amcheck.detail).toMatch(/lacks matching index tuple/);
    // Everything else about the copy is right: only amcheck can see this.
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['amcheck']);
  }, 180_000);
});
