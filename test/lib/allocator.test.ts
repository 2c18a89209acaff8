import { describe, expect, it } from 'vitest';
import { ALLOCATOR_SETTINGS, allocatorEnvironment } from '../../src/lib/allocator.ts';

describe('allocatorEnvironment', () => {
  it('gives a Linux process a fixed 1 MiB mmap threshold and two malloc arenas', () => {
    expect(allocatorEnvironment({}, 'linux')).toEqual({
      MALLOC_MMAP_THRESHOLD_: '1048576',
      MALLOC_ARENA_MAX: '2',
    });
  });

  it("keeps an operator's own value, even an empty one", () => {
    expect(allocatorEnvironment({ MALLOC_ARENA_MAX: '8' }, 'linux')).toEqual({
      MALLOC_MMAP_THRESHOLD_: ALLOCATOR_SETTINGS.MALLOC_MMAP_THRESHOLD_,
    });
    expect(allocatorEnvironment({ MALLOC_ARENA_MAX: '', MALLOC_MMAP_THRESHOLD_: '' }, 'linux')).toEqual({});
  });

  it('sets nothing off Linux', () => {
    expect(allocatorEnvironment({}, 'darwin')).toEqual({});
  });
});
