// Actions on a user, each with a reason code and a note, confirmed in a dialog that then shows the
// capabilities the change left. Buttons follow the key's role and the user's status; the server
// still decides (a refused action shows its problem in the dialog).
import { useState, type FormEvent } from 'react';
import type { Capabilities, User } from '@kyclo/client';
import type { Session } from '../api';
import { Dialog, Section } from '../ui';
import { CAPABILITIES, capabilityLine } from './User';
import { ConfirmButtons, useConfirmed } from '../components/confirm';

export const REASON_CODES = [
  'fraud_suspected', 'account_takeover_reported', 'compliance_review', 'sanctions_match', 'aml_alert', 'kyc_failed',
  'review_cleared', 'user_request', 'dormant', 'deceased', 'erasure_requested', 'other',
] as const;
type Reason = (typeof REASON_CODES)[number];
type Move = 'flag' | 'suspend' | 'unsuspend' | 'block' | 'unblock';
type Kind = Move | 'clear_flag' | 'close' | 'erasure' | 'legal_hold_set' | 'legal_hold_clear';

interface Action {
  kind: Kind;
  label: string;
  danger?: boolean;
  show: (u: User, s: Session) => boolean;
}

const change = (s: Session) => s.can('users:change_status');
const ACTIONS: Action[] = [
  { kind: 'flag', label: 'Flag', show: (u, s) => change(s) && (u.status === 'active' || u.status === 'suspended') },
  { kind: 'clear_flag', label: 'Clear flag', show: (u, s) => change(s) && u.status === 'flagged' },
  { kind: 'suspend', label: 'Suspend', show: (u, s) => change(s) && (u.status === 'active' || u.status === 'flagged') },
  { kind: 'unsuspend', label: 'Unsuspend', show: (u, s) => change(s) && u.status === 'suspended' },
  { kind: 'block', label: 'Block', danger: true, show: (u, s) => change(s) && u.status !== 'blocked' && u.status !== 'closed' },
  { kind: 'unblock', label: 'Unblock', show: (u, s) => change(s) && u.status === 'blocked' },
  { kind: 'close', label: 'Close', danger: true, show: (u, s) => s.can('users:close') && u.status !== 'closed' },
  { kind: 'erasure', label: 'Request erasure', danger: true, show: (u, s) => s.can('users:close') && !u.erasure },
  { kind: 'legal_hold_set', label: 'Set legal hold', show: (u, s) => s.can('tenant:admin') && !u.legal_hold },
  { kind: 'legal_hold_clear', label: 'Clear legal hold', show: (u, s) => s.can('tenant:admin') && u.legal_hold },
];

export function UserActions({ session, user, onDone }: { session: Session; user: User; onDone: () => void }) {
  const [open, setOpen] = useState<Action | null>(null);
  const available = ACTIONS.filter((a) => a.show(user, session));
  if (available.length === 0) return null;
  return (
    <Section title="Actions" id="actions">
      <div className="buttons">
        {available.map((a) => (
          <button key={a.kind} type="button" className={a.danger ? 'danger' : 'secondary'} onClick={() => setOpen(a)}>
            {a.label}
          </button>
        ))}
      </div>
      <Dialog title={open ? `${open.label}: ${user.id}` : ''} open={open !== null} onClose={() => setOpen(null)}>
        {open && (
          <ActionForm
            session={session}
            user={user}
            action={open}
            onClose={(changed) => {
              setOpen(null);
              if (changed) onDone();
            }}
          />
        )}
      </Dialog>
    </Section>
  );
}

function ActionForm({ session, user, action, onClose }: { session: Session; user: User; action: Action; onClose: (changed: boolean) => void }) {
  const { client } = session;
  const { error, busy, after, run } = useConfirmed(session, user.id);
  const needsReasonCode = action.kind !== 'erasure' && !action.kind.startsWith('legal_hold');
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const note = String(f.get('note') ?? '').trim() || undefined;
    const reason = String(f.get('reason') ?? '') as Reason;
    const path = { params: { path: { id: user.id } } };
    void run(async () => {
      if (action.kind === 'close') {
        const origin = f.get('origin') === 'user' ? 'user' : 'operator';
        await client.ok(client.api.DELETE('/v1/users/{id}', { ...path, body: { origin, reason, note } }));
      } else if (action.kind === 'erasure') {
        const requestedBy = f.get('requested_by') === 'user' ? 'user' : 'operator';
        await client.ok(client.api.POST('/v1/users/{id}/erasure', { ...path, body: { requested_by: requestedBy, note } }));
      } else if (action.kind === 'legal_hold_set') {
        await client.ok(client.api.POST('/v1/users/{id}/legal-hold', { ...path, body: { reason: note ?? '' } }));
      } else if (action.kind === 'legal_hold_clear') {
        await client.ok(client.api.DELETE('/v1/users/{id}/legal-hold', path));
      } else if (action.kind === 'clear_flag') {
        await client.ok(client.api.POST('/v1/users/{id}/status-changes', { ...path, body: { status: 'active', reason, note } }));
      } else {
        await client.users[action.kind](user.id, { reason, note });
      }
    });
  };
  if (after) return <CapabilitiesAfter after={after} onClose={() => onClose(true)} />;
  return (
    <form onSubmit={submit}>
      {needsReasonCode && (
        <div className="field">
          <label htmlFor="action-reason">Reason code</label>
          {/* Every status change takes one (lifecycle/user-status.ts): lifting a freeze as much as making one. */}
          <select id="action-reason" name="reason" required defaultValue="">
            <option value="" disabled>
              Choose a reason
            </option>
            {REASON_CODES.map((r) => (
              <option key={r} value={r}>
                {r.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </div>
      )}
      {(action.kind === 'close' || action.kind === 'erasure') && (
        <fieldset className="field">
          <legend>Who asked for it</legend>
          <label>
            <input type="radio" name={action.kind === 'close' ? 'origin' : 'requested_by'} value="operator" defaultChecked /> an operator
          </label>
          <label>
            <input type="radio" name={action.kind === 'close' ? 'origin' : 'requested_by'} value="user" /> the user
          </label>
        </fieldset>
      )}
      <div className="field">
        <label htmlFor="action-note">{action.kind === 'legal_hold_set' ? 'Reason (required)' : 'Note'}</label>
        <textarea id="action-note" name="note" rows={3} maxLength={1000} required={action.kind === 'legal_hold_set'} />
      </div>
      <ConfirmButtons error={error} busy={busy} label={`Confirm: ${action.label.toLowerCase()}`} danger={action.danger} onCancel={() => onClose(false)} />
    </form>
  );
}

/** A confirmed action's last word: what the user may do now. */
export function CapabilitiesAfter({ after, onClose }: { after: Capabilities; onClose: () => void }) {
  return (
    <div>
      <p role="status">Done. The user’s capabilities now:</p>
      <ul className="caps" data-testid="capabilities-after">
        {CAPABILITIES.map((k) => (
          <li key={k} className={after.capabilities[k].allowed ? 'allowed' : 'denied'}>
            {capabilityLine(after, k)}
          </li>
        ))}
      </ul>
      <div className="buttons">
        <button type="button" autoFocus onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}
