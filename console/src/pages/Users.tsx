// The users list: search and filters in the URL (shareable, Back works), keyset paging with a stack of
// the cursors seen (the API has no offsets: page 10,000 costs what page 1 costs), 50 rows a page.
import { useState, type FormEvent } from 'react';
import type { ListUsersQuery, User } from '@kyclo/client';
import type { Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Empty, Show, time, useLoad } from '../ui';

const STATUSES = ['active', 'flagged', 'suspended', 'blocked', 'closed'] as const;
const KYC = ['unverified', 'pending', 'verified', 'rejected', 'review_required'] as const;
// The ratings (GET /v1/enumerations/risk_ratings), and unrated: never assessed.
export const RISK_RATINGS = ['low', 'medium', 'high', 'prohibited'] as const satisfies readonly NonNullable<User['risk']>['rating'][];
const TYPES = ['individual', 'business'] as const satisfies readonly NonNullable<ListUsersQuery['type']>[];
const RISK_FILTER = [...RISK_RATINGS, 'unrated'] as const satisfies NonNullable<ListUsersQuery['risk']>;
const PAGE = 50;

export const displayName = (u: User) =>
  u.type === 'business' ? (u.legal_name ?? '—') : [u.first_name, u.last_name].filter(Boolean).join(' ') || '—';

function queryOf(params: URLSearchParams): ListUsersQuery {
  const q: ListUsersQuery = { limit: PAGE };
  const statuses = params.getAll('status').filter((s): s is (typeof STATUSES)[number] => (STATUSES as readonly string[]).includes(s));
  if (statuses.length) q.status = statuses;
  const kyc = params.get('kyc_status');
  if (kyc && (KYC as readonly string[]).includes(kyc)) q.kyc_status = kyc as (typeof KYC)[number];
  const risk = params.getAll('risk').filter((r): r is (typeof RISK_FILTER)[number] => (RISK_FILTER as readonly string[]).includes(r));
  if (risk.length) q.risk = risk;
  const type = params.get('type');
  if (type && (TYPES as readonly string[]).includes(type)) q.type = type as (typeof TYPES)[number];
  for (const k of ['q', 'tag'] as const) if (params.get(k)) q[k] = params.get(k)!;
  // Dates are whole UTC days: "to" includes its day.
  if (params.get('created_from')) q.created_from = `${params.get('created_from')}T00:00:00Z`;
  if (params.get('created_to')) q.created_to = `${params.get('created_to')}T23:59:59.999Z`;
  return q;
}

export function UsersPage({ session, query }: { session: Session; query: URLSearchParams }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const filterKey = query.toString();
  const [seenKey, setSeenKey] = useState(filterKey);
  if (seenKey !== filterKey) {
    setSeenKey(filterKey);
    setCursors([]);
  }
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(
    () => session.client.ok(session.client.api.GET('/v1/users', { params: { query: { ...queryOf(query), cursor } } })),
    [filterKey, cursor],
  );
  const pageNumber = cursors.length + 1;
  return (
    <>
      <h1>Users</h1>
      <Filters query={query} />
      <Show loaded={page}>
        {(p) => (
          <>
            {p.data.length === 0 ? (
              <Empty>No user matches these filters.</Empty>
            ) : (
              <div className="table-wrap" tabIndex={0} role="region" aria-label="Users">
                <table className="dense">
                  <caption className="visually-hidden">Users, newest first, page {pageNumber}</caption>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col" className="hide-narrow">Email</th>
                      <th scope="col">Status</th>
                      <th scope="col">KYC</th>
                      <th scope="col">Risk</th>
                      <th scope="col" className="hide-narrow">Type</th>
                      <th scope="col" className="hide-narrow">External ref</th>
                      <th scope="col" className="hide-narrow">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.data.map((u) => (
                      <tr key={u.id}>
                        <td>
                          <Link to={`/users/${u.id}`}>{displayName(u)}</Link>
                        </td>
                        <td className="clip hide-narrow">{u.email ?? '—'}</td>
                        <td>
                          <Badge value={u.status} />
                        </td>
                        <td>
                          <Badge value={u.kyc.status} />
                        </td>
                        <td>{u.risk ? <Badge kind="risk" value={u.risk.rating} /> : <span className="muted small">unrated</span>}</td>
                        <td className="hide-narrow">{u.type}</td>
                        <td className="hide-narrow clip">{u.external_ref ?? '—'}</td>
                        <td className="hide-narrow nowrap">{time(u.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <nav className="pager" aria-label="Pages">
              <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
                Previous
              </button>
              <span aria-live="polite">Page {pageNumber}</span>
              <button type="button" disabled={!p.next_cursor} onClick={() => p.next_cursor && setCursors((c) => [...c, p.next_cursor!])}>
                Next
              </button>
            </nav>
          </>
        )}
      </Show>
    </>
  );
}

function Filters({ query }: { query: URLSearchParams }) {
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const next = new URLSearchParams();
    for (const [k, v] of form.entries()) if (typeof v === 'string' && v.trim()) next.append(k, v.trim());
    navigate(`/users${next.size ? `?${next}` : ''}`);
  };
  const statuses = query.getAll('status');
  return (
    <form className="filters" onSubmit={submit} role="search" aria-label="Search users" key={query.toString()}>
      <div className="field grow">
        <label htmlFor="f-q">Search</label>
        <input id="f-q" name="q" type="search" defaultValue={query.get('q') ?? ''} placeholder="Name, email, phone or external ref" maxLength={100} />
      </div>
      <fieldset className="field">
        <legend>Status</legend>
        <div className="checks">
          {STATUSES.map((s) => (
            <label key={s}>
              <input type="checkbox" name="status" value={s} defaultChecked={statuses.includes(s)} /> {s}
            </label>
          ))}
        </div>
      </fieldset>
      <FilterSelect query={query} id="f-kyc" name="kyc_status" label="KYC status" values={KYC} shown={(k) => k.replace(/_/g, ' ')} />
      <FilterSelect query={query} id="f-type" name="type" label="Type" values={TYPES} />
      <FilterSelect query={query} id="f-risk" name="risk" label="Risk" values={RISK_FILTER} shown={(r) => (r === 'unrated' ? 'unrated (never assessed)' : r)} />
      <div className="field">
        <label htmlFor="f-tag">Tag</label>
        <input id="f-tag" name="tag" defaultValue={query.get('tag') ?? ''} maxLength={64} />
      </div>
      <div className="field">
        <label htmlFor="f-from">Created from</label>
        <input id="f-from" name="created_from" type="date" defaultValue={query.get('created_from') ?? ''} />
      </div>
      <div className="field">
        <label htmlFor="f-to">Created to</label>
        <input id="f-to" name="created_to" type="date" defaultValue={query.get('created_to') ?? ''} />
      </div>
      <div className="field actions">
        <button type="submit">Search</button>
        <button type="button" className="secondary" onClick={() => navigate('/users')}>
          Clear
        </button>
      </div>
    </form>
  );
}

/** A one-of filter read from and written to the query string; "Any" leaves it out of the search. */
function FilterSelect<T extends string>(props: { query: URLSearchParams; id: string; name: string; label: string; values: readonly T[]; shown?: (v: T) => string }) {
  const { query, id, name, label, values, shown = (v: T) => v } = props;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} name={name} defaultValue={query.get(name) ?? ''}>
        <option value="">Any</option>
        {values.map((v) => (
          <option key={v} value={v}>
            {shown(v)}
          </option>
        ))}
      </select>
    </div>
  );
}
