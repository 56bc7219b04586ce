// The compliance profile on a user's page: the risk assessment with its history and, for the roles
// that may (risk:set), a form to set it; the required actions, open and resolved, with add and cancel
// for the roles that update users. Each write is confirmed in a dialog like the other actions and
// then shows the capabilities it left (a prohibited rating denies all four). The server still decides.
import { useState, type FormEvent } from 'react';
import type { paths, User } from '@kyclo/client';
import type { Session } from '../api';
import { Badge, Dialog, Empty, ProblemBox, Section, Show, time, useLoad } from '../ui';
import { RISK_RATINGS } from './Users';
import { CapabilitiesAfter } from './UserActions';
import { ConfirmButtons, useConfirmed } from '../components/confirm';

type Risk = NonNullable<User['risk']>;
type RequiredAction = User['required_actions'][number];
type NewAction = paths['/v1/users/{id}/required-actions']['post']['requestBody']['content']['application/json'];
const RISK_STATUSES = ['cleared', 'pending', 'rejected', 'unknown'] as const satisfies readonly Risk['status'][];
// Codes that need a field or a document type (compliance/required-actions.ts NEEDS); the others need neither.
const NEEDS: Record<string, 'field' | 'document_type' | undefined> = { provide_field: 'field', provide_document: 'document_type', renew_document: 'document_type' };

interface Props {
  session: Session;
  user: User;
  onDone: () => void;
}

export function RiskSection({ session, user, onDone }: Props) {
  const { client } = session;
  const history = useLoad(
    () => client.ok(client.api.GET('/v1/users/{id}/risk-changes', { params: { path: { id: user.id }, query: { limit: 20 } } })),
    [user.id, user.version],
  );
  const [open, setOpen] = useState(false);
  const may = session.can('risk:set') && user.status !== 'closed';
  const r = user.risk;
  const button = may ? (
    <button type="button" className="secondary" onClick={() => setOpen(true)}>
      Set risk
    </button>
  ) : undefined;
  return (
    <Section title="Risk" id="risk" actions={button}>
      {r ? (
        <p data-testid="risk-current" data-rating={r.rating}>
          <Badge kind="risk" value={r.rating} /> status {r.status} · since {time(r.updated_at)}
          {r.set_by.role ? ` · by ${r.set_by.role}` : ''}
          {r.reason ? ` — “${r.reason}”` : ''}
        </p>
      ) : (
        <Empty>Not assessed yet (unrated).</Empty>
      )}
      <Show loaded={history}>
        {(h) =>
          h.data.length === 0 ? null : (
            <>
              <h3>History</h3>
              <ol className="history">
                {h.data.map((c) => (
                  <li key={c.id}>
                    <span className="nowrap">{time(c.created_at)}</span> {c.from ? <Badge kind="risk" value={c.from.rating} /> : 'unrated'} →{' '}
                    <Badge kind="risk" value={c.to.rating} /> {c.to.status}
                    <span className="muted small">
                      {' '}
                      by {c.actor.role ?? 'unknown'}
                      {c.reason ? ` — “${c.reason}”` : ''}
                    </span>
                  </li>
                ))}
              </ol>
            </>
          )
        }
      </Show>
      <Dialog title={`Set risk: ${user.id}`} open={open} onClose={() => setOpen(false)}>
        <RiskForm
          session={session}
          user={user}
          onClose={(changed) => {
            setOpen(false);
            if (changed) onDone();
          }}
        />
      </Dialog>
    </Section>
  );
}

function RiskForm({ session, user, onClose }: { session: Session; user: User; onClose: (changed: boolean) => void }) {
  const { error, busy, after, run } = useConfirmed(session, user.id);
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const body = {
      rating: String(f.get('rating')) as Risk['rating'],
      status: String(f.get('status')) as Risk['status'],
      reason: String(f.get('reason') ?? '').trim(),
    };
    void run(() => session.client.ok(session.client.api.PUT('/v1/users/{id}/risk', { params: { path: { id: user.id } }, body })));
  };
  if (after) return <CapabilitiesAfter after={after} onClose={() => onClose(true)} />;
  return (
    <form onSubmit={submit}>
      <div className="field">
        <label htmlFor="risk-rating">Rating</label>
        <select id="risk-rating" name="rating" defaultValue={user.risk?.rating ?? 'low'}>
          {RISK_RATINGS.map((x) => (
            <option key={x} value={x}>
              {x === 'prohibited' ? 'prohibited (denies every capability)' : x}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="risk-status">Risk status</label>
        <select id="risk-status" name="status" defaultValue={user.risk?.status ?? 'cleared'}>
          {RISK_STATUSES.map((x) => (
            <option key={x} value={x}>
              {x}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="risk-reason">Reason (required)</label>
        <textarea id="risk-reason" name="reason" rows={3} maxLength={1000} required />
      </div>
      <ConfirmButtons error={error} busy={busy} label="Confirm: set risk" onCancel={() => onClose(false)} />
    </form>
  );
}

export const actionLabel = (a: RequiredAction) =>
  `${a.code.replace(/_/g, ' ')}${a.field ? `: ${a.field}` : ''}${a.document_type ? `: ${a.document_type.replace(/_/g, ' ')}` : ''}`;

export function RequiredActionsSection({ session, user, onDone }: Props) {
  const [adding, setAdding] = useState(false);
  const [cancelling, setCancelling] = useState<RequiredAction | null>(null);
  const may = session.can('users:update') && user.status !== 'closed';
  // Open ones first (what the user still owes), then the resolved, newest first within each.
  const list = [...user.required_actions].sort((a, b) => Number(b.status === 'open') - Number(a.status === 'open') || b.created_at.localeCompare(a.created_at));
  const done = (changed: boolean) => {
    setAdding(false);
    setCancelling(null);
    if (changed) onDone();
  };
  const button = may ? (
    <button type="button" className="secondary" onClick={() => setAdding(true)}>
      Add required action
    </button>
  ) : undefined;
  return (
    <Section title="Required actions" id="required-actions" actions={button}>
      {list.length === 0 ? (
        <Empty>Nothing is asked of this user.</Empty>
      ) : (
        <ul className="actions-list">
          {list.map((a) => (
            <li key={a.id} data-action-id={a.id} data-status={a.status} className={a.status === 'open' ? undefined : 'resolved'}>
              <Badge kind="action" value={a.status} />
              <strong>{actionLabel(a)}</strong>
              {a.message && <span>“{a.message}”</span>}
              <span className="muted small">
                asked {time(a.created_at)}
                {a.due_at ? ` · due ${time(a.due_at)}` : ''}
                {a.resolved_at ? ` · ${a.status} ${time(a.resolved_at)}` : ''}
              </span>
              {may && a.status === 'open' && (
                <button type="button" className="link" aria-label={`Cancel the required action ${actionLabel(a)}`} onClick={() => setCancelling(a)}>
                  Cancel
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <Dialog title={cancelling ? `Cancel required action: ${actionLabel(cancelling)}` : `Add required action: ${user.id}`} open={adding || cancelling !== null} onClose={() => done(false)}>
        {cancelling ? <CancelForm session={session} user={user} action={cancelling} onClose={done} /> : adding && <AddForm session={session} user={user} onClose={done} />}
      </Dialog>
    </Section>
  );
}

function AddForm({ session, user, onClose }: { session: Session; user: User; onClose: (changed: boolean) => void }) {
  const { client } = session;
  // The codes and document types as the server publishes them, with their labels.
  const codes = useLoad(() => client.ok(client.api.GET('/v1/enumerations/{name}', { params: { path: { name: 'required_action_codes' } } })), []);
  const docs = useLoad(() => client.ok(client.api.GET('/v1/enumerations/{name}', { params: { path: { name: 'document_types' } } })), []);
  const [code, setCode] = useState('provide_field');
  const { error, busy, after, run } = useConfirmed(session, user.id);
  const need = NEEDS[code];
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const text = (k: string) => String(f.get(k) ?? '').trim() || undefined;
    const due = text('due_on');
    const body: NewAction = {
      code: code as NewAction['code'],
      field: need === 'field' ? text('field') : undefined,
      document_type: need === 'document_type' ? (text('document_type') as NewAction['document_type']) : undefined,
      message: text('message'),
      // A due day means the end of that day, UTC (as the users filter reads dates).
      due_at: due ? `${due}T23:59:59Z` : undefined,
    };
    void run(() => client.ok(client.api.POST('/v1/users/{id}/required-actions', { params: { path: { id: user.id } }, body })));
  };
  if (after) return <CapabilitiesAfter after={after} onClose={() => onClose(true)} />;
  return (
    <Show loaded={codes}>
      {(c) => (
        <form onSubmit={submit}>
          <div className="field">
            <label htmlFor="rqa-code">What is asked</label>
            <select id="rqa-code" name="code" value={code} onChange={(e) => setCode(e.target.value)}>
              {c.values.map((v) => (
                <option key={v.code} value={v.code}>
                  {v.label}
                </option>
              ))}
            </select>
          </div>
          {need === 'field' && (
            <div className="field">
              <label htmlFor="rqa-field">Field (as the policy names it: email, address.line1, address)</label>
              <input id="rqa-field" name="field" required maxLength={64} pattern="[a-z_]+(\.[a-z0-9_]+)?" />
            </div>
          )}
          {need === 'document_type' && (
            <Show loaded={docs}>
              {(d) => (
                <div className="field">
                  <label htmlFor="rqa-doc">Document type</label>
                  <select id="rqa-doc" name="document_type" required defaultValue="">
                    <option value="" disabled>
                      Choose a document type
                    </option>
                    {d.values.map((v) => (
                      <option key={v.code} value={v.code}>
                        {v.label}
                      </option>
                    ))}
                  </select>
                </div>
              )}
            </Show>
          )}
          <div className="field">
            <label htmlFor="rqa-message">Message to the user</label>
            <textarea id="rqa-message" name="message" rows={3} maxLength={500} />
          </div>
          <div className="field">
            <label htmlFor="rqa-due">Due on (optional)</label>
            <input id="rqa-due" name="due_on" type="date" />
          </div>
          <ConfirmButtons error={error} busy={busy} label="Confirm: add required action" onCancel={() => onClose(false)} />
        </form>
      )}
    </Show>
  );
}

function CancelForm({ session, user, action, onClose }: { session: Session; user: User; action: RequiredAction; onClose: (changed: boolean) => void }) {
  const { error, busy, after, run } = useConfirmed(session, user.id);
  if (after) return <CapabilitiesAfter after={after} onClose={() => onClose(true)} />;
  const cancel = () =>
    void run(() =>
      session.client.ok(session.client.api.POST('/v1/users/{id}/required-actions/{action_id}/cancel', { params: { path: { id: user.id, action_id: action.id } } })),
    );
  return (
    <div>
      <p>The user will no longer be asked for this. The action stays in the list, cancelled.</p>
      <ProblemBox error={error} />
      <div className="buttons">
        <button type="button" className="danger" disabled={busy} onClick={cancel}>
          {busy ? 'Working…' : 'Confirm: cancel required action'}
        </button>
        <button type="button" className="secondary" onClick={() => onClose(false)}>
          Keep it
        </button>
      </div>
    </div>
  );
}
