// Operations: webhook endpoints (failing first) with their delivery log and redelivery, the audit
// chain's state, API keys (the secret shown once), and the tenant policy (read-only here).
import { useState, type FormEvent } from 'react';
import type { Session } from '../api';
import { Link } from '../router';
import { Badge, Empty, ProblemBox, Section, Show, time, useLoad } from '../ui';

export function OperationsPage({ session, tab }: { session: Session; tab: string }) {
  const tabs = [
    { id: 'webhooks', label: 'Webhooks', show: session.can('events:manage') },
    { id: 'audit', label: 'Audit chain', show: session.can('audit:read') },
    { id: 'keys', label: 'API keys', show: session.can('tenant:admin') },
    { id: 'policy', label: 'Policy', show: session.can('tenant:admin') },
  ].filter((t) => t.show);
  const current = tabs.find((t) => t.id === tab) ?? tabs[0];
  if (!current) return <Empty>This key’s role has no operations page.</Empty>;
  return (
    <>
      <h1>Operations</h1>
      <nav className="tabs" aria-label="Operations">
        {tabs.map((t) => (
          <Link key={t.id} to={`/operations/${t.id}`} aria-current={t.id === current.id ? 'page' : undefined}>
            {t.label}
          </Link>
        ))}
      </nav>
      {current.id === 'webhooks' && <Webhooks session={session} />}
      {current.id === 'audit' && <AuditChain session={session} />}
      {current.id === 'keys' && <ApiKeys session={session} />}
      {current.id === 'policy' && <Policy session={session} />}
    </>
  );
}

function Webhooks({ session }: { session: Session }) {
  const { client } = session;
  const endpoints = useLoad(() => client.ok(client.api.GET('/v1/webhook-endpoints', { params: { query: { limit: 100 } } })), []);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <Show loaded={endpoints}>
      {(e) => {
        // Failing (or disabled) endpoints first: they are the ones an operator came for.
        const rank = (x: (typeof e.data)[number]) => (!x.enabled ? 0 : x.failing_since ? 1 : 2);
        const sorted = [...e.data].sort((a, b) => rank(a) - rank(b));
        if (sorted.length === 0) return <Empty>No webhook endpoint.</Empty>;
        return sorted.map((w) => (
          <Section key={w.id} id={w.id} title={w.url}>
            <p>
              {w.enabled ? <Badge value={w.failing_since ? 'failing' : 'enabled'} /> : <Badge value={`disabled_${w.disabled_reason ?? ''}`} />}{' '}
              {w.failing_since && <span>failing since {time(w.failing_since)} · </span>}
              {w.event_types.length ? w.event_types.join(', ') : 'every event type'}
            </p>
            <button type="button" className="secondary" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? null : w.id)}>
              {open === w.id ? 'Hide deliveries' : 'Show deliveries'}
            </button>
            {open === w.id && <Deliveries session={session} endpointId={w.id} />}
          </Section>
        ));
      }}
    </Show>
  );
}

function Deliveries({ session, endpointId }: { session: Session; endpointId: string }) {
  const { client } = session;
  const log = useLoad(() => client.ok(client.api.GET('/v1/webhook-endpoints/{id}/deliveries', { params: { path: { id: endpointId }, query: { limit: 50 } } })), [endpointId]);
  const [result, setResult] = useState<{ id: string; error?: unknown } | null>(null);
  const redeliver = async (eventId: string) => {
    try {
      await client.ok(client.api.POST('/v1/events/{id}/redeliver', { params: { path: { id: eventId } } }));
      setResult({ id: eventId });
      log.reload();
    } catch (error) {
      setResult({ id: eventId, error });
    }
  };
  return (
    <Show loaded={log}>
      {(l) =>
        l.data.length === 0 ? (
          <Empty>No delivery attempt yet.</Empty>
        ) : (
          <>
            {result && (result.error ? <ProblemBox error={result.error} /> : <p role="status">Event {result.id} queued again for every enabled endpoint that takes it.</p>)}
            <div className="table-wrap" tabIndex={0} role="region" aria-label="Delivery attempts">
              <table className="dense">
                <caption className="visually-hidden">Delivery attempts, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Event</th>
                    <th scope="col">Attempt</th>
                    <th scope="col">Result</th>
                    <th scope="col">Redeliver</th>
                  </tr>
                </thead>
                <tbody>
                  {l.data.map((d) => (
                    <tr key={`${d.delivery_id}-${d.attempt}`}>
                      <td className="nowrap">{time(d.attempted_at)}</td>
                      <td>{d.event_id}</td>
                      <td>{d.attempt}</td>
                      <td>{d.succeeded ? `✓ ${d.status_code}` : `✕ ${d.status_code ?? ''} ${d.error ?? ''}`} ({d.duration_ms} ms)</td>
                      <td>
                        <button type="button" className="link" onClick={() => void redeliver(d.event_id)} aria-label={`Redeliver ${d.event_id}`}>
                          Redeliver
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )
      }
    </Show>
  );
}

interface ReadyBody {
  status: string;
  audit_sealer?: { state: string; problems?: string[]; unsealed_entries?: number; oldest_unsealed_seconds?: number; rejected_entries?: number };
}

function AuditChain({ session }: { session: Session }) {
  const { client } = session;
  const checkpoints = useLoad(() => client.ok(client.api.GET('/v1/audit/checkpoints', { params: { query: { limit: 5 } } })), []);
  // /readyz is the process's own view of the sealer (unsealed backlog, problems); it needs no key.
  const ready = useLoad(async () => (await fetch('/readyz')).json() as Promise<ReadyBody>, []);
  const verification = useLoad(() => client.ok(client.api.GET('/v1/audit/verification')), []);
  return (
    <>
      <Section title="Sealing" id="sealer">
        <Show loaded={ready}>
          {(r) =>
            r.audit_sealer ? (
              <p>
                <Badge value={r.audit_sealer.state} /> · {r.audit_sealer.unsealed_entries ?? 0} entries not sealed yet
                {r.audit_sealer.oldest_unsealed_seconds ? `, oldest ${r.audit_sealer.oldest_unsealed_seconds} s` : ''}
                {r.audit_sealer.problems?.length ? ` · ${r.audit_sealer.problems.join('; ')}` : ''}
              </p>
            ) : (
              <p className="muted">This process does not seal the audit log (a worker does).</p>
            )
          }
        </Show>
      </Section>
      <Section title="Last verification" id="verification">
        <Show loaded={verification}>
          {(v) =>
            v.verification === null ? (
              <Empty>
                <code>kyclo audit verify</code> has not run for this tenant yet.
              </Empty>
            ) : (
              <p data-testid="last-verification">
                <Badge value={v.verification.ok ? 'ok' : 'broken'} /> {time(v.verification.verified_at)} · {v.verification.sealed} entries checked
                {v.verification.kept_checkpoints ? `, against ${v.verification.kept_checkpoints} kept checkpoints` : ''}
                {v.verification.ok ? '' : ` · at ${v.verification.broken_at ?? '?'}${v.verification.entry_id ? ` (${v.verification.entry_id})` : ''}: ${v.verification.reason ?? ''}`}
                {v.verification.authentic ? '' : ' · NOT AUTHENTIC: this record was not written by a Kyclo process with the master key; do not trust it'}
              </p>
            )
          }
        </Show>
        <p className="muted small">
          What the last <code>kyclo audit verify</code> found; the proof is running it again against checkpoints kept outside the database.
        </p>
      </Section>
      <Section title="Signed checkpoints" id="checkpoints">
        <Show loaded={checkpoints}>
          {(c) =>
            c.data.length === 0 ? (
              <Empty>No checkpoint signed yet.</Empty>
            ) : (
              <ol className="plain">
                {c.data.map((k) => (
                  <li key={k.id}>
                    {time(k.signed_at)} · entry {k.chain_seq} · <code className="clip">{k.hash.slice(0, 16)}…</code> · key {k.key_id}
                  </li>
                ))}
              </ol>
            )
          }
        </Show>
      </Section>
    </>
  );
}

function ApiKeys({ session }: { session: Session }) {
  const { client } = session;
  const keys = useLoad(() => client.ok(client.api.GET('/v1/api-keys', { params: { query: { limit: 200 } } })), []);
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setError(null);
    try {
      const made = await client.ok(client.api.POST('/v1/api-keys', { body: { name: String(f.get('name')), role: f.get('role') as (typeof session.me.manages_roles)[number] } }));
      setSecret(made.key);
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (id: string) => {
    if (!window.confirm(`Revoke ${id}? Requests with it stop within a second.`)) return;
    try {
      await client.ok(client.api.DELETE('/v1/api-keys/{id}', { params: { path: { id } } }));
      keys.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <Section title="New key" id="new-key">
        <form className="filters" onSubmit={create}>
          <div className="field grow">
            <label htmlFor="key-name">Name</label>
            <input id="key-name" name="name" required maxLength={100} />
          </div>
          <div className="field">
            <label htmlFor="key-role">Role</label>
            <select id="key-role" name="role">
              {session.me.manages_roles.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </div>
          <div className="field actions">
            <button type="submit">Create</button>
          </div>
        </form>
        {secret && (
          <div className="notice" role="status">
            <p>The key’s secret, shown this once: store it now.</p>
            <code className="secret">{secret}</code>
          </div>
        )}
        <ProblemBox error={error} />
      </Section>
      <Section title="Keys" id="keys">
        <Show loaded={keys}>
          {(k) => (
            <ul className="plain">
              {k.data.map((x) => (
                <li key={x.id} className={x.revoked_at ? 'muted' : undefined}>
                  <strong>{x.name}</strong> · {x.role} · {x.prefix}… · last used {time(x.last_used_at)}
                  {x.revoked_at ? ` · revoked ${time(x.revoked_at)}` : ''}
                  {!x.revoked_at && x.id !== session.me.id && session.me.manages_roles.includes(x.role) && (
                    <>
                      {' '}
                      <button type="button" className="link" onClick={() => void revoke(x.id)}>
                        Revoke
                      </button>
                    </>
                  )}
                </li>
              ))}
            </ul>
          )}
        </Show>
      </Section>
    </>
  );
}

function Policy({ session }: { session: Session }) {
  const { client } = session;
  const policy = useLoad(() => client.ok(client.api.GET('/v1/policy')), []);
  return (
    <Section title="Tenant policy (effective)" id="policy">
      <p className="muted small">Read-only here; change it with PUT /v1/policy.</p>
      <Show loaded={policy}>{(p) => <pre className="json" tabIndex={0} aria-label="The effective policy, as JSON">{JSON.stringify(p, null, 2)}</pre>}</Show>
    </Section>
  );
}
