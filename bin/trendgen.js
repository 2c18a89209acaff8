#!/usr/bin/env node
// The CLI is TypeScript run through tsx: one source of truth, no stale build output.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
