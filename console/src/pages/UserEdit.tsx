// The profile, and editing it the safe way: a dry run first shows, per field, whether it applies, applies
// and reopens review, waits for approval, or is refused; applying sends If-Match with the version the
// operator edited, so a change made meanwhile answers 412 and is shown instead of overwritten.
import { useState, type FormEvent } from 'react';
import { KycloProblem, type PatchDryRun, type User, type UserPatch } from '@kyclo/client';
import type { Session } from '../api';
import { ProblemBox, Section, useLoad } from '../ui';

const INDIVIDUAL = ['title', 'first_name', 'middle_name', 'last_name', 'maiden_name', 'preferred_name', 'gender', 'date_of_birth', 'place_of_birth', 'birth_country', 'nationality', 'email', 'phone', 'occupation', 'employment_type', 'income_range', 'source_of_funds', 'tax_residence', 'tax_number', 'language', 'timezone'];
const BUSINESS = ['legal_name', 'registration_number', 'vat_number', 'incorporation_date', 'legal_form', 'website', 'employees_range', 'monthly_transactions', 'transaction_frequency', 'sector', 'email', 'phone'];
const ADDRESS = ['line1', 'line2', 'line3', 'city', 'state', 'postcode'].map((k) => `address.${k}`);
// The form's fields the API takes as integers (users.schemas.ts): sent as numbers, since the API does
// not coerce a JSON body and refuses "2500" for 2500.
const INTEGERS = new Set(['monthly_transactions']);

const OUTCOME_TEXT: Record<string, string> = {
  allow: 'applies',
  allow_with_review: 'applies and reopens KYC review',
  approval: 'waits for a compliance officer’s approval',
  deny: 'refused',
};

export const fieldsOf = (u: User) => [...(u.type === 'business' ? BUSINESS : INDIVIDUAL), ...ADDRESS];

export function valueOf(u: User, field: string): string {
  const [a, b] = field.split('.') as [string, string | undefined];
  const top = (u as unknown as Record<string, unknown>)[a];
  const v = b ? (top as Record<string, unknown> | null)?.[b] : top;
  return v === null || v === undefined ? '' : String(v);
}

/** An input as the API takes it: '' clears (null); an integer field's digits become a number. */
function typed(field: string, text: string): unknown {
  if (text === '') return null;
  // Anything else is sent as typed, so the dry run shows the server's problem naming the field.
  if (INTEGERS.has(field) && /^-?\d+$/.test(text)) return Number(text);
  return text;
}

/** The merge patch of the fields whose input differs from the user: '' clears a field. */
function patchOf(u: User, form: FormData): UserPatch {
  const patch: Record<string, unknown> = {};
  for (const field of fieldsOf(u)) {
    const next = String(form.get(field) ?? '').trim();
    if (next === valueOf(u, field)) continue;
    const [a, b] = field.split('.') as [string, string | undefined];
    if (b) patch[a] = { ...((patch[a] as object) ?? {}), [b]: typed(field, next) };
    else patch[a] = typed(field, next);
  }
  return patch as UserPatch;
}

export function ProfileSection({ session, user, onSaved }: { session: Session; user: User; onSaved: () => void }) {
  const { client } = session;
  // The policy is a tenant:admin read; other roles see each field's outcome in the dry run.
  const policy = useLoad(() => (session.can('tenant:admin') ? client.ok(client.api.GET('/v1/policy')) : Promise.resolve(null)), []);
  const [editing, setEditing] = useState(false);
  const state = user.kyc.status === 'verified' ? 'verified' : 'unverified';
  const outcomes = (policy.data?.fields as Record<string, Record<string, Record<string, string>>> | undefined)?.[user.type]?.[state];
  const canEdit = session.can('users:update') && user.status !== 'closed' && !user.erasure?.erased_at;
  return (
    <Section
      title="Profile"
      id="profile"
      actions={
        canEdit && !editing ? (
          <button type="button" className="secondary" onClick={() => setEditing(true)}>
            Edit
          </button>
        ) : null
      }
    >
      {editing ? (
        <EditForm session={session} user={user} onDone={(saved) => { setEditing(false); if (saved) onSaved(); }} />
      ) : (
        <table className="kv">
          <caption className="visually-hidden">Profile fields{outcomes ? ' and what a change to each does under the policy' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Value</th>
              {outcomes && <th scope="col">A change</th>}
            </tr>
          </thead>
          <tbody>
            {fieldsOf(user).map((f) => (
              <tr key={f}>
                <th scope="row">{f}</th>
                <td className="clip">{valueOf(user, f) || <span className="muted">—</span>}</td>
                {outcomes && <td className={`outcome-${outcomes[f] ?? 'allow'}`}>{OUTCOME_TEXT[outcomes[f] ?? 'allow']}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {user.pending_changes.length > 0 && <p className="small">Pending approval: {user.pending_changes.flatMap((c) => c.fields).join(', ')}</p>}
    </Section>
  );
}

function EditForm({ session, user, onDone }: { session: Session; user: User; onDone: (saved: boolean) => void }) {
  const { client } = session;
  const [patch, setPatch] = useState<UserPatch | null>(null);
  const [dry, setDry] = useState<PatchDryRun | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [meanwhile, setMeanwhile] = useState<{ field: string; was: string; now: string }[] | null>(null);
  const [busy, setBusy] = useState(false);
  const path = { params: { path: { id: user.id } } };

  const check = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const p = patchOf(user, new FormData(e.currentTarget));
    setError(null);
    setMeanwhile(null);
    if (Object.keys(p).length === 0) return setError(new Error('Nothing changed.'));
    setBusy(true);
    try {
      setDry(await client.ok(client.api.POST('/v1/users/{id}/dry-run', { ...path, body: p as never })));
      setPatch(p);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const apply = async () => {
    if (!patch) return;
    setBusy(true);
    setError(null);
    try {
      await client.users.update(user.id, patch, { ifMatch: `"${user.version}"` });
      onDone(true);
    } catch (err) {
      setError(err);
      if (err instanceof KycloProblem && err.status === 412) {
        const now = await client.ok(client.api.GET('/v1/users/{id}', path));
        setMeanwhile(fieldsOf(user).filter((f) => valueOf(user, f) !== valueOf(now, f)).map((f) => ({ field: f, was: valueOf(user, f), now: valueOf(now, f) })));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={check} onChange={() => dry && setDry(null)}>
      <div className="edit-grid">
        {fieldsOf(user).map((f) => (
          <div className="field" key={f}>
            <label htmlFor={`edit-${f}`}>{f}</label>
            <input id={`edit-${f}`} name={f} defaultValue={valueOf(user, f)} inputMode={INTEGERS.has(f) ? 'numeric' : undefined} />
          </div>
        ))}
      </div>
      {dry && (
        <div role="status" className="dry-run">
          <h3>What this change would do</h3>
          <ul>
            {dry.outcomes.map((o) => (
              <li key={o.field} className={`outcome-${o.outcome}`} data-field={o.field}>
                <code>{o.field}</code>: {OUTCOME_TEXT[o.outcome]} <span className="muted small">({o.reason})</span>
              </li>
            ))}
          </ul>
          {dry.outcomes.length === 0 && <p>No field would change.</p>}
        </div>
      )}
      <ProblemBox error={error} />
      {meanwhile && (
        <div className="problem" role="alert">
          <strong>Changed meanwhile (you edited version {user.version}):</strong>
          <ul>
            {meanwhile.map((m) => (
              <li key={m.field}>
                <code>{m.field}</code>: “{m.was}” → “{m.now}”
              </li>
            ))}
            {meanwhile.length === 0 && <li>Fields outside this form (status, KYC or tags).</li>}
          </ul>
          <p>Cancel and edit again from the current version.</p>
        </div>
      )}
      <div className="buttons">
        {dry && dry.refused.length === 0 && dry.outcomes.length > 0 && !meanwhile ? (
          <button type="button" onClick={apply} disabled={busy}>
            Apply (version {user.version})
          </button>
        ) : (
          <button type="submit" disabled={busy}>
            Check changes (dry run)
          </button>
        )}
        <button type="button" className="secondary" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
