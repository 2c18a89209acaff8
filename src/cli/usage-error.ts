/** Exit status 2: the command line itself is wrong. */
export class UsageError extends Error {
  override name = 'UsageError';
}
