// What is recorded about a user beside the profile: relationships and ultimate owners, KYC
// verifications, documents (numbers masked by the server; files opened only for roles that may).
import type { User } from '@kyclo/client';
import type { Session } from '../api';
import { Link } from '../router';
import { Badge, Empty, Section, Show, time, useLoad } from '../ui';

export function UserRecords({ session, user }: { session: Session; user: User }) {
  const { client } = session;
  const path = { params: { path: { id: user.id } } };
  const rels = useLoad(() => client.ok(client.api.GET('/v1/users/{id}/relationships', path)), [user.id, user.version]);
  const owners = useLoad(() => (user.type === 'business' ? client.ok(client.api.GET('/v1/users/{id}/ownership', path)) : Promise.resolve(null)), [user.id, user.version]);
  const kyc = useLoad(() => (session.can('kyc:read') ? client.ok(client.api.GET('/v1/users/{id}/verifications', path)) : Promise.resolve(null)), [user.id, user.version]);
  const docs = useLoad(() => (session.can('documents:read') ? client.ok(client.api.GET('/v1/users/{id}/documents', path)) : Promise.resolve(null)), [user.id, user.version]);

  const download = async (id: string, type: string) => {
    const res = await client.api.GET('/v1/documents/{id}/content', { params: { path: { id } }, parseAs: 'blob' });
    if (!res.response.ok || !(res.data instanceof Blob)) return;
    const url = URL.createObjectURL(res.data);
    const a = document.createElement('a');
    a.href = url;
    a.download = `${type}-${id}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  return (
    <div className="grid">
      <Section title="Relationships and ownership" id="relationships">
        <Show loaded={rels}>
          {(r) =>
            r.data.length === 0 ? (
              <Empty>No relationship.</Empty>
            ) : (
              <ul className="plain">
                {r.data.map((x) => {
                  const other = x.user_id === user.id ? x.related_user_id : x.user_id;
                  return (
                    <li key={x.id}>
                      {x.type.replace(/_/g, ' ')} {x.user_id === user.id ? '' : 'of '}
                      <Link to={`/users/${other}`}>{other}</Link>
                      {x.ownership_percent !== null ? ` · ${x.ownership_percent}%` : ''}
                      {x.control ? ' · control' : ''}
                      {x.ended_at ? ` · ended ${time(x.ended_at)}` : ''}
                    </li>
                  );
                })}
              </ul>
            )
          }
        </Show>
        <Show loaded={owners}>
          {(o) =>
            o && o.owners.length > 0 ? (
              <p className="small">
                Ultimate owners:{' '}
                {o.owners.map((w) => (
                  <span key={w.user_id}>
                    <Link to={`/users/${w.user_id}`}>{w.user_id}</Link> {w.percent}%{' '}
                  </span>
                ))}
              </p>
            ) : null
          }
        </Show>
      </Section>
      <Section title="KYC verifications" id="verifications">
        <p>
          <Badge value={`kyc_${user.kyc.status}`} /> level {user.kyc.level ?? '—'} · verified {time(user.kyc.verified_at)} · sub-status{' '}
          <span data-testid="kyc-sub-status">{user.kyc.sub_status ? user.kyc.sub_status.replace(/_/g, ' ') : 'not set'}</span>
        </p>
        <Show loaded={kyc}>
          {(v) =>
            v === null ? (
              <p className="muted small">Verification records are not shown to this role.</p>
            ) : v.data.length === 0 ? (
              <Empty>No verification recorded.</Empty>
            ) : (
              <ul className="plain">
                {v.data.map((x) => (
                  <li key={x.id}>
                    {time(x.created_at)} · {x.provider} · <Badge value={x.result} /> · {x.kyc_status_before} → {x.kyc_status_after}
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </Section>
      <Section title="Documents" id="documents">
        <Show loaded={docs}>
          {(d) =>
            d === null ? (
              <p className="muted small">Documents are not shown to this role.</p>
            ) : d.data.length === 0 ? (
              <Empty>No document.</Empty>
            ) : (
              <ul className="plain">
                {d.data.map((x) => (
                  <li key={x.id} className={x.status === 'archived' ? 'muted' : undefined}>
                    {x.type.replace(/_/g, ' ')} · {x.status}
                    {x.number ? ` · ${x.number}` : ''} · {time(x.created_at)}
                    {x.kind === 'physical' && session.can('documents:read_content') && !x.destroyed_at && (
                      <>
                        {' '}
                        <button type="button" className="link" onClick={() => void download(x.id, x.type)}>
                          Download
                        </button>
                      </>
                    )}
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </Section>
    </div>
  );
}
