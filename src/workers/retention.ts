// The retention sweeper inside `kyclo serve`: it destroys due erasures on a timer. Several server
// processes may sweep at once (SKIP LOCKED); a failed sweep is logged and retried at the next tick.
import type { ErasureService } from '../modules/erasure/erasure.service.js';

export function startRetentionSweeper(
  erasure: ErasureService,
  { intervalSeconds, log }: { intervalSeconds: number; log: { info(o: object, m: string): void; error(o: object, m: string): void } },
): () => Promise<void> {
  if (intervalSeconds <= 0) return async () => undefined;
  let running: Promise<void> | null = null;
  const tick = () => {
    if (running) return;
    running = erasure
      .sweep()
      .then(({ erased }) => {
        if (erased.length) log.info({ erased: erased.length }, 'retention sweep destroyed due erasures');
      })
      .catch((err) => log.error({ err }, 'retention sweep failed; retrying at the next tick'))
      .finally(() => (running = null));
  };
  const timer = setInterval(tick, intervalSeconds * 1000);
  timer.unref();
  setImmediate(tick);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
