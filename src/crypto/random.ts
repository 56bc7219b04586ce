// Random bytes from the CSPRNG, drawn 4 KiB at a time. crypto.randomBytes costs about 5 µs a call
// whatever the size (a job object and a getrandom per call), and one write draws six to ten times
// (ids, a data key and its id, GCM IVs): measured, a sixth of an imported row's CPU and a tenth of
// a POST's. crypto.randomUUID pools its entropy the same way. No byte is handed out twice: each
// draw copies its slice out and moves past it; the pool is refilled in place once used up.
import crypto from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/** `n` random bytes, as crypto.randomBytes(n). Large draws go to the CSPRNG directly. */
export function randomBytes(n: number): Buffer {
  if (n > 256) return crypto.randomBytes(n);
  if (offset + n > POOL_BYTES) {
    crypto.randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.allocUnsafe(n);
  pool.copy(out, 0, offset, offset + n);
  offset += n;
  return out;
}
