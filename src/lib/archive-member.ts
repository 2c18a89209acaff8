import path from 'node:path';

/**
 * Why an archive member's name must not be written under `root`, or undefined when it stays inside: absolute
 * names, `..` components and anything that resolves outside are refused. Shared by every extraction (classic
 * imports, base backups); each adds its own policy on member types and links.
 */
export function memberPathProblem(root: string, name: string): string | undefined {
  if (path.isAbsolute(name) || /^[A-Za-z]:/.test(name)) return 'has an absolute path';
  if (name.split(/[/\\]/).includes('..'))
    return 'has a ".." path component that could leave the target folder';
  const resolved = path.resolve(root, name);
  if (resolved !== root && !resolved.startsWith(root + path.sep)) return 'resolves outside the target folder';
  return undefined;
}
