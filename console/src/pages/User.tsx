// One user: who they are, what they may do now (capabilities with reasons), how they got here (status
// history, timeline), and what the key's role may do about it (actions, edit).
import type { Capabilities, StatusChange, User } from '@kyclo/client';
import type { Session } from '../api';
import { Link } from '../router';
import { Badge, Empty, Section, Show, time, useLoad } from '../ui';
import { displayName } from './Users';
import { UserActions } from './UserActions';
import { ProfileSection } from './UserEdit';
import { UserRecords } from './UserRecords';
import { Timeline } from './Timeline';
import { RequiredActionsSection, RiskSection } from './UserCompliance';

export const CAPABILITIES = ['deposits', 'withdrawals', 'exchanges', 'card_transactions'] as const;

export function UserPage({ session, id }: { session: Session; id: string }) {
  const { client } = session;
  const path = { params: { path: { id } } };
  const user = useLoad(() => client.ok(client.api.GET('/v1/users/{id}', path)), [id]);
  const caps = useLoad(() => client.ok(client.api.GET('/v1/users/{id}/capabilities', path)), [id]);
  const history = useLoad(() => client.ok(client.api.GET('/v1/users/{id}/status-changes', { params: { path: { id }, query: { limit: 50 } } })), [id]);
  const reloadAll = () => {
    user.reload();
    caps.reload();
    history.reload();
  };
  return (
    <>
      <p className="crumbs">
        <Link to="/users">Users</Link> / <span>{id}</span>
      </p>
      <Show loaded={user}>
        {(u) => (
          <>
            <div className="user-head">
              <h1>{displayName(u)}</h1>
              <Badge value={u.status} />
              <Badge value={`kyc_${u.kyc.status}`} />
              {u.risk && <Badge kind="risk" value={u.risk.rating} label={`risk ${u.risk.rating}`} />}
              {u.legal_hold && <Badge value="legal_hold" />}
              <span className="muted small">
                {u.type} · {u.id} · version {u.version}
                {u.external_ref ? ` · ref ${u.external_ref}` : ''}
              </span>
            </div>
            <div className="grid">
              <div className="col">
                <UserActions session={session} user={u} onDone={reloadAll} />
                <CapabilitiesPanel loaded={caps} />
                <StatusSection user={u} history={history} />
                <RiskSection session={session} user={u} onDone={reloadAll} />
                <RequiredActionsSection session={session} user={u} onDone={reloadAll} />
              </div>
              <div className="col">
                <ProfileSection session={session} user={u} onSaved={reloadAll} />
              </div>
            </div>
            <UserRecords session={session} user={u} />
            <Timeline session={session} userId={u.id} />
          </>
        )}
      </Show>
    </>
  );
}

const REASONS: Record<string, string> = {
  not_allowed: 'not allowed in this status by the tenant’s policy',
  under_review: 'under review',
  account_suspended: 'account suspended',
  account_blocked: 'account blocked',
  account_closed: 'account closed',
  kyc_not_verified: 'KYC not verified',
  related_party_blocked: 'a related party is blocked',
  related_party_suspended: 'a related party is suspended',
  related_party_flagged: 'a related party is flagged',
  risk_prohibited: 'risk rated prohibited',
};

export const capabilityLine = (c: Capabilities, k: (typeof CAPABILITIES)[number]) => {
  const v = c.capabilities[k];
  return `${k.replace('_', ' ')}: ${v.allowed ? 'allowed' : `denied (${REASONS[v.reason ?? ''] ?? v.reason})`}`;
};

export function CapabilitiesPanel({ loaded }: { loaded: ReturnType<typeof useLoad<Capabilities>> }) {
  return (
    <Section title="Capabilities" id="capabilities">
      <Show loaded={loaded}>
        {(c) => (
          <>
            <ul className="caps" aria-live="polite">
              {CAPABILITIES.map((k) => {
                const v = c.capabilities[k];
                return (
                  <li key={k} className={v.allowed ? 'allowed' : 'denied'} data-capability={k} data-allowed={v.allowed}>
                    <span className="cap-name">{k.replace('_', ' ')}</span>
                    <span className="cap-verdict">{v.allowed ? '✓ allowed' : '✕ denied'}</span>
                    {!v.allowed && <span className="cap-reason">{REASONS[v.reason ?? ''] ?? v.reason}</span>}
                  </li>
                );
              })}
            </ul>
            {c.related_parties.length > 0 && (
              <p className="small">
                Held by related parties:{' '}
                {c.related_parties.map((p) => (
                  <Link key={p.user_id} to={`/users/${p.user_id}`}>
                    {p.user_id} ({p.status})
                  </Link>
                ))}
              </p>
            )}
            <p className="muted small">Evaluated {time(c.evaluated_at)}</p>
          </>
        )}
      </Show>
    </Section>
  );
}

function StatusSection({ user, history }: { user: User; history: ReturnType<typeof useLoad<{ data: StatusChange[] }>> }) {
  return (
    <Section title="Status" id="status">
      <p>
        <Badge value={user.status} /> since {time(user.status_changed_at)}
        {user.status_reason ? ` · reason ${user.status_reason}` : ''}
      </p>
      <Show loaded={history}>
        {(h) =>
          h.data.length === 0 ? (
            <Empty>No status change yet.</Empty>
          ) : (
            <ol className="history">
              {h.data.map((s) => (
                <li key={s.id}>
                  <span className="nowrap">{time(s.created_at)}</span> <Badge value={s.from} /> → <Badge value={s.to} />
                  {s.reason && <code> {s.reason}</code>}
                  <span className="muted small">
                    {' '}
                    by {s.actor?.role ?? s.origin}
                    {s.note ? ` — “${s.note}”` : ''}
                  </span>
                </li>
              ))}
            </ol>
          )
        }
      </Show>
    </Section>
  );
}
