// The review queue: pending change requests across users, oldest first, with the values before and
// after. Four eyes: the key that asked for a change cannot decide it; the console says so and the
// server refuses it anyway.
import { useState } from 'react';
import type { ChangeRequest } from '@kyclo/client';
import type { Session } from '../api';
import { Link } from '../router';
import { Empty, ProblemBox, Show, time, useLoad } from '../ui';

const shown = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

export function ReviewsPage({ session }: { session: Session }) {
  const { client } = session;
  const [cursor, setCursor] = useState<string | undefined>(undefined);
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
              {oldestFirst.length === 0 ? <Empty>No change waits for approval.</Empty> : oldestFirst.map((c) => <Request key={c.id} session={session} change={c} onDecided={queue.reload} />)}
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
    </>
  );
}

function Request({ session, change, onDecided }: { session: Session; change: ChangeRequest; onDecided: () => void }) {
  const { client } = session;
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState('');
  const mine = change.requested_by?.key_id === session.me.id;
  const decide = async (how: 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    const path = { params: { path: { id: change.id } } };
    try {
      if (how === 'approve') await client.ok(client.api.POST('/v1/change-requests/{id}/approve', { ...path, body: note.trim() ? { note: note.trim() } : {} }));
      else await client.ok(client.api.POST('/v1/change-requests/{id}/reject', { ...path, body: { reason: note.trim() || 'rejected in the console' } }));
      onDecided();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const noteId = `note-${change.id}`;
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
        <>
          <div className="field">
            <label htmlFor={noteId}>Note (the reason, when rejecting)</label>
            <textarea id={noteId} rows={2} maxLength={1000} value={note} onChange={(e) => setNote(e.target.value)} />
          </div>
          <div className="buttons">
            <button type="button" disabled={busy} onClick={() => void decide('approve')}>
              Approve
            </button>
            <button type="button" className="danger" disabled={busy} onClick={() => void decide('reject')}>
              Reject
            </button>
          </div>
        </>
      )}
      <ProblemBox error={error} />
    </article>
  );
}
