// The review queue: pending change requests across users, oldest first, with the values before and
// after. Four eyes: the key that asked for a change cannot decide it; the console says so and the
// server refuses it anyway. A decision is final (a decided request is never pending again), so
// Approve and Reject each open a confirm dialog, as the user's actions do: a rejection needs the
// reason the operator types — the API requires one, and the console never supplies one of its own —
// and an approval takes an optional note and no reason, as POST /v1/change-requests/{id}/approve does.
import { useState, type FormEvent } from 'react';
import type { ChangeRequest } from '@kyclo/client';
import type { Session } from '../api';
import { Link } from '../router';
import { Dialog, Empty, Show, time, useLoad } from '../ui';
import { ConfirmButtons } from '../components/confirm';

const shown = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

type How = 'approve' | 'reject';

export function ReviewsPage({ session }: { session: Session }) {
  const { client } = session;
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const [deciding, setDeciding] = useState<{ change: ChangeRequest; how: How } | null>(null);
  const queue = useLoad(
    () => client.ok(client.api.GET('/v1/change-requests', { params: { query: { status: 'pending', limit: 50, cursor } } })),
    [cursor],
  );
  return (
    <>
      <h1>Review queue</h1>
      <Show loaded={queue}>
        {(q) => {
          const oldestFirst = [...q.data].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
          return (
            <>
              {oldestFirst.length === 0 ? <Empty>No change waits for approval.</Empty> : oldestFirst.map((c) => <Request key={c.id} session={session} change={c} onDecide={(how) => setDeciding({ change: c, how })} />)}
              {(q.next_cursor || cursor) && (
                <nav className="pager" aria-label="Pages">
                  <button type="button" disabled={!cursor} onClick={() => setCursor(undefined)}>
                    First page
                  </button>
                  <button type="button" disabled={!q.next_cursor} onClick={() => setCursor(q.next_cursor ?? undefined)}>
                    Next
                  </button>
                </nav>
              )}
            </>
          );
        }}
      </Show>
      <Dialog
        title={deciding ? `${deciding.how === 'approve' ? 'Approve' : 'Reject'}: ${deciding.change.fields.join(', ')} of ${deciding.change.user_id}` : ''}
        open={deciding !== null}
        onClose={() => setDeciding(null)}
      >
        {deciding && (
          <DecisionForm
            key={`${deciding.change.id}-${deciding.how}`}
            session={session}
            change={deciding.change}
            how={deciding.how}
            onClose={(reload) => {
              setDeciding(null);
              if (reload) queue.reload();
            }}
          />
        )}
      </Dialog>
    </>
  );
}

function Request({ session, change, onDecide }: { session: Session; change: ChangeRequest; onDecide: (how: How) => void }) {
  const mine = change.requested_by?.key_id === session.me.id;
  return (
    <article className="card" aria-labelledby={`${change.id}-title`} data-change-request={change.id}>
      <div className="card-head">
        <h2 id={`${change.id}-title`}>
          <Link to={`/users/${change.user_id}`}>{change.user_id}</Link>: {change.fields.join(', ')}
        </h2>
        <span className="muted small">
          asked {time(change.created_at)} by {change.requested_by?.role ?? 'the CLI'}
        </span>
      </div>
      <table className="kv">
        <caption className="visually-hidden">Values before and after</caption>
        <thead>
          <tr>
            <th scope="col">Field</th>
            <th scope="col">Now</th>
            <th scope="col">Proposed</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(change.changes ?? {}).map(([f, v]) => (
            <tr key={f}>
              <th scope="row">{f}</th>
              <td>{shown(v.from)}</td>
              <td>
                <strong>{shown(v.to)}</strong>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {mine ? (
        <p className="notice" role="note">
          This key asked for the change, so it cannot decide it: four eyes — another officer’s key approves or rejects it.
        </p>
      ) : (
        <div className="buttons">
          <button type="button" onClick={() => onDecide('approve')}>
            Approve
          </button>
          <button type="button" className="danger" onClick={() => onDecide('reject')}>
            Reject
          </button>
        </div>
      )}
    </article>
  );
}

/**
 * The confirm dialog's form. Reject: the reason is required and sent as typed (trimmed); the confirm
 * button stays disabled, and the hint says why, while it is empty. Approve: no reason (the API takes
 * none), a note only when one is typed. A refused decision (409 stale or already decided) shows its
 * problem here; closing the dialog then reloads the queue.
 */
function DecisionForm({ session, change, how, onClose }: { session: Session; change: ChangeRequest; how: How; onClose: (reload: boolean) => void }) {
  const { client } = session;
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const rejecting = how === 'reject';
  const noReason = rejecting && reason.trim() === '';
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (noReason) return;
    const note = String(new FormData(e.currentTarget).get('note') ?? '').trim() || undefined;
    const path = { params: { path: { id: change.id } } };
    setBusy(true);
    setError(null);
    try {
      if (rejecting) await client.ok(client.api.POST('/v1/change-requests/{id}/reject', { ...path, body: { reason: reason.trim(), note } }));
      else await client.ok(client.api.POST('/v1/change-requests/{id}/approve', { ...path, body: note ? { note } : {} }));
      onClose(true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <p>
        {rejecting
          ? 'Nothing is applied and the request is closed: a rejection is final, it cannot be approved afterwards.'
          : 'Every proposed value is applied at once: an approval is final.'}
      </p>
      {rejecting && (
        <div className="field">
          <label htmlFor="decision-reason">Reason (required)</label>
          <textarea
            id="decision-reason"
            rows={3}
            maxLength={1000}
            required
            autoFocus
            aria-describedby="decision-reason-hint"
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
          <p id="decision-reason-hint" className={noReason ? 'field-error small' : 'muted small'}>
            {noReason ? 'Type the reason for rejecting: it is required, and kept with the decision as written.' : 'Kept with the decision as written.'}
          </p>
        </div>
      )}
      <div className="field">
        <label htmlFor="decision-note">Note (optional)</label>
        <textarea id="decision-note" name="note" rows={2} maxLength={1000} autoFocus={!rejecting} />
      </div>
      <ConfirmButtons
        error={error}
        busy={busy}
        label={rejecting ? 'Confirm: reject' : 'Confirm: approve'}
        danger={rejecting}
        disabled={noReason}
        onCancel={() => onClose(error !== null)}
      />
    </form>
  );
}
