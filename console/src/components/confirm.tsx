// The parts every confirmed write on a user shares: run the write, then read the capabilities it
// left (so the dialog can show what the user may do now), and the dialog's problem box and buttons.
// One place, so the risk, required-action and status dialogs cannot drift apart in how they confirm.
import { useState } from 'react';
import type { Capabilities } from '@kyclo/client';
import type { Session } from '../api';
import { ProblemBox } from '../ui';

/** Runs a write, then reads the capabilities it left; the problem, if any, stays in the dialog. */
export function useConfirmed(session: Session, userId: string) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [after, setAfter] = useState<Capabilities | null>(null);
  const run = async (write: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await write();
      setAfter(await session.client.ok(session.client.api.GET('/v1/users/{id}/capabilities', { params: { path: { id: userId } } })));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, after, run };
}

/**
 * The foot of a confirm form: the problem, if any, then submit (named by what it does) and Cancel.
 * `disabled` holds the submit back while the form lacks what the write needs (a typed reason).
 */
export function ConfirmButtons({ error, busy, label, danger, disabled, onCancel }: { error: unknown; busy: boolean; label: string; danger?: boolean; disabled?: boolean; onCancel: () => void }) {
  return (
    <>
      <ProblemBox error={error} />
      <div className="buttons">
        <button type="submit" className={danger ? 'danger' : undefined} disabled={busy || disabled}>
          {busy ? 'Working…' : label}
        </button>
        <button type="button" className="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </>
  );
}
