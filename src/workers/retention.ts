// The retention sweeper inside `kyclo serve`: it destroys due erasures on a timer. Several server
// processes may sweep at once (SKIP LOCKED); a failed sweep is logged and retried at the next tick.
import type { ErasureService } from '../modules/erasure/erasure.service.js';
import { every, type Log } from './every.js';

export function startRetentionSweeper(erasure: ErasureService, { intervalSeconds, log }: { intervalSeconds: number; log: Log }): () => Promise<void> {
  if (intervalSeconds <= 0) return async () => undefined;
  return every(
    intervalSeconds * 1000,
    async () => {
      const { erased, failed } = await erasure.sweep();
      if (erased.length) log.info({ erased: erased.length }, 'retention sweep destroyed due erasures');
      // The others were destroyed; these are tried again at the next tick, and stay due until they go.
      if (failed.length) log.error({ failed }, 'retention sweep could not destroy these users');
    },
    { immediately: true, onError: (err) => log.error({ err }, 'retention sweep failed; retrying at the next tick') },
  );
}
