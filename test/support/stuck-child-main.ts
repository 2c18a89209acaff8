import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { startLiveness } from '../../src/lib/liveness.ts';

const [mode] = process.argv.slice(2);
const dir = process.env.STUCK_DIR!;
appendFileSync(path.join(dir, 'starts'), `${process.pid}\n`);
startLiveness(Number(process.env.STUCK_AFTER_MS), process.env.LIVENESS_FILE);
const marker = path.join(dir, 'stuck-once');
const keepAlive = setInterval(() => {}, 1000);
if (!existsSync(marker)) {
  writeFileSync(marker, String(process.pid));
  setTimeout(() => {
    if (mode === 'pool') {
      // Opening a FIFO for reading waits for a writer: four such opens hold every thread of the pool.
      for (let i = 0; i < 4; i++) void open(path.join(dir, `fifo-${i}`), 'r').catch(() => {});
    } else {
      for (;;) {
        // An event loop that never turns again.
      }
    }
  }, 500);
}
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  process.exit(0);
});
