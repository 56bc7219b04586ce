// Who holds a dispatcher's senders. A dispatcher has SEND_CONCURRENCY senders, and one tenant holds
// TENANT_SENDS of them at most, so one tenant's slow receivers leave the others room. But tenants whose
// receivers all hang (a connection accepted, no answer) held every sender between them — five shares —
// until each send's 25 s deadline, and every other tenant's webhooks waited that long, round after
// round. So a send whose request has been on the wire for SLOW_SEND_MS stops holding a shared sender
// (the clock runs only while the receiver is waited for: a slow database building the payload or
// recording the attempt must not free senders, which would claim more work for it): it goes on, counted
// apart (at most MAX_SLOW_SENDS of them, each an idle socket and its timers), and still counts in its
// own tenant's room, so a tenant never has more than TENANT_SENDS sends in flight, slow or not.
// One interval timer, running only while sends are, finds the slow ones (checked every second: a
// timer per send would cost each delivery its own).

/** Sends in flight in one dispatcher, and of them one tenant's at most (see dispatcher.ts). */
export const SEND_CONCURRENCY = 50;
export const TENANT_SENDS = 10;
/** A send whose request has been out this long stops holding a shared sender (most receivers answer in well under a second). */
export const SLOW_SEND_MS = 5_000;
/** Slow sends a dispatcher lets run beside its senders: twenty tenants' whole shares. */
export const MAX_SLOW_SENDS = 200;

export interface Held {
  readonly tenantId: string;
  /** When its request went out; null before and after (building the payload, recording the attempt). */
  sendingSince: number | null;
  slow: boolean;
}

/** `onFreed` is called when slow sends have left senders free (to claim for them at once). */
export function createSenderPool({ onFreed, slowAfterMs = SLOW_SEND_MS }: { onFreed: () => void; slowAfterMs?: number }) {
  const held = new Set<Held>();
  const perTenant = new Map<string, number>();
  let busy = 0;
  let slow = 0;
  let sweeper: NodeJS.Timeout | null = null;

  function sweep() {
    const now = Date.now();
    let freed = 0;
    for (const h of held) {
      if (slow >= MAX_SLOW_SENDS) break;
      if (!h.slow && h.sendingSince !== null && now - h.sendingSince >= slowAfterMs) {
        h.slow = true;
        busy--;
        slow++;
        freed++;
      }
    }
    if (freed > 0) onFreed();
  }

  /** How many more sends the tenant may start. */
  const roomOf = (tenantId: string) => TENANT_SENDS - (perTenant.get(tenantId) ?? 0);

  return {
    /** Senders free for the next claim. */
    free: () => SEND_CONCURRENCY - busy,
    roomOf,
    /** The tenants with sends in flight, and each one's room: the claim's parameters. */
    rooms() {
      const tenants = [...perTenant.keys()];
      return { tenants, rooms: tenants.map(roomOf) };
    },
    /** A sender for one of the tenant's sends, taken before its payload is built. */
    take(tenantId: string): Held {
      const h: Held = { tenantId, sendingSince: null, slow: false };
      held.add(h);
      busy++;
      perTenant.set(tenantId, (perTenant.get(tenantId) ?? 0) + 1);
      sweeper ??= setInterval(sweep, Math.min(1000, Math.max(10, slowAfterMs / 4))).unref();
      return h;
    },
    /** Its request goes out now: the slow clock starts. */
    sending(h: Held) {
      h.sendingSince = Date.now();
    },
    /** Its receiver answered (or the send ended): the clock stops. */
    sent(h: Held) {
      h.sendingSince = null;
    },
    release(h: Held) {
      if (!held.delete(h)) return;
      if (h.slow) slow--;
      else busy--;
      const n = perTenant.get(h.tenantId)! - 1;
      if (n > 0) perTenant.set(h.tenantId, n);
      else perTenant.delete(h.tenantId);
      if (held.size === 0 && sweeper) {
        clearInterval(sweeper);
        sweeper = null;
      }
    },
  };
}
