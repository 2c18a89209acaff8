// A module hook (node --import) that appends every package a process imports to RECORD_IMPORTS_FILE: lets a
// test see which dependencies a command loads.
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
    import { appendFileSync } from 'node:fs';
    export async function resolve(specifier, context, next) {
      if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:'))
        appendFileSync(${JSON.stringify(process.env.RECORD_IMPORTS_FILE)}, specifier + '\\n');
      return next(specifier, context);
    }
  `)}`,
);
appendFileSync(process.env.RECORD_IMPORTS_FILE, '');
