import { describe, expect, it } from 'vitest';
import { memberPathProblem } from '../../src/lib/archive-member.ts';

describe('memberPathProblem', () => {
  const root = '/srv/restore';

  it('lets names inside the target through', () => {
    for (const name of ['PG_VERSION', 'base/1/1', 'a/b/', './global/pg_control', 'dots..in..name'])
      expect(memberPathProblem(root, name), name).toBeUndefined();
  });

  it('refuses absolute names, drive letters and .. components, wherever they are', () => {
    expect(memberPathProblem(root, '/etc/passwd')).toBe('has an absolute path');
    expect(memberPathProblem(root, 'C:\\\\Windows')).toBe('has an absolute path');
    for (const name of ['..', '../x', 'a/../../x', 'a/../b', 'a\\\\..\\\\x'])
      expect(memberPathProblem(root, name), name).toMatch(/"\.\." path component/);
  });
});
