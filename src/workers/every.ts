// One timer loop for periodic background work: never two runs of a task at once in one process, a
// failure logged and retried at the next tick, and stop() waits for the run in progress.
export interface Log {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

export function every(intervalMs: number, task: () => Promise<unknown>, opts: { immediately?: boolean; onError: (err: unknown) => void }) {
  let running: Promise<unknown> | null = null;
  const tick = () => {
    if (running) return;
    running = task()
      .catch(opts.onError)
      .finally(() => (running = null));
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  if (opts.immediately) setImmediate(tick);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
