/** A repeatable, comma-separable option: `--tag a --tag b,c` → [a, b, c]. */
export const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(',').filter(Boolean),
];
