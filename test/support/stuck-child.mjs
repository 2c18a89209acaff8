// A supervised child for the liveness tests: run through tsx like bin/trendgen.js, so it can load the TypeScript
// liveness module. Usage: stuck-child.mjs <mode> where mode is `pool` (blocks every libuv thread on FIFOs) or
// `loop` (blocks the event loop), each only on its first start (a marker file says it happened).
import { register } from 'tsx/esm/api';

register();
await import('./stuck-child-main.ts');
