// One timeline of a user: audit entries, events and status changes merged, newest first, filterable by
// source. Each source is read only when the key's role may read it; the others are said to be hidden.
import { useState } from 'react';
import type { Session } from '../api';
import { Empty, Section, Show, time, useLoad } from '../ui';

type Source = 'audit' | 'event' | 'status';
interface Item {
  id: string;
  at: string;
  source: Source;
  what: string;
  detail: string;
  who: string;
}

export function Timeline({ session, userId }: { session: Session; userId: string }) {
  const { client } = session;
  const [filter, setFilter] = useState<Source | 'all'>('all');
  const readable: Record<Source, boolean> = { audit: session.can('audit:read'), event: session.can('events:manage'), status: session.can('users:read') };
  const items = useLoad(async () => {
    const query = { user_id: userId, limit: 100 };
    const [audit, events, status] = await Promise.all([
      readable.audit ? client.ok(client.api.GET('/v1/audit-events', { params: { query } })) : null,
      readable.event ? client.ok(client.api.GET('/v1/events', { params: { query } })) : null,
      client.ok(client.api.GET('/v1/users/{id}/status-changes', { params: { path: { id: userId }, query: { limit: 100 } } })),
    ]);
    const out: Item[] = [];
    for (const a of audit?.data ?? []) {
      out.push({
        id: a.id, at: a.occurred_at, source: 'audit', what: a.action,
        detail: [a.outcome !== 'applied' ? a.outcome : '', a.changed_fields.join(', ')].filter(Boolean).join(' · '),
        who: a.actor.role ?? a.actor.type,
      });
    }
    for (const e of events?.data ?? []) {
      const fields = (e.data as { changed_fields?: string[] }).changed_fields;
      out.push({ id: e.id, at: e.created_at, source: 'event', what: e.type, detail: fields ? fields.join(', ') : '', who: '' });
    }
    for (const s of status.data) {
      out.push({ id: s.id, at: s.created_at, source: 'status', what: `${s.from} → ${s.to}`, detail: [s.reason, s.note].filter(Boolean).join(' — '), who: s.actor?.role ?? s.origin });
    }
    return out.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
  }, [userId]);
  const hidden = (Object.keys(readable) as Source[]).filter((s) => !readable[s]);
  return (
    <Section
      title="Timeline"
      id="timeline"
      actions={
        <div className="inline">
          <label htmlFor="timeline-filter">Show</label>
          <select id="timeline-filter" value={filter} onChange={(e) => setFilter(e.target.value as Source | 'all')}>
            <option value="all">everything</option>
            <option value="audit">audit entries</option>
            <option value="event">events</option>
            <option value="status">status changes</option>
          </select>
          <button type="button" className="secondary" onClick={items.reload}>
            Refresh
          </button>
        </div>
      }
    >
      {hidden.length > 0 && <p className="muted small">Not shown to this role: {hidden.map((h) => (h === 'event' ? 'events' : `${h} entries`)).join(', ')}.</p>}
      <Show loaded={items}>
        {(all) => {
          const shown = all.filter((i) => filter === 'all' || i.source === filter);
          if (shown.length === 0) return <Empty>Nothing to show.</Empty>;
          return (
            <ol className="timeline" aria-label="Timeline, newest first">
              {shown.map((i) => (
                <li key={i.id} data-source={i.source}>
                  <span className="nowrap muted small">{time(i.at)}</span>
                  <span className={`src src-${i.source}`}>{i.source}</span>
                  <strong>{i.what}</strong>
                  {i.detail && <span> {i.detail}</span>}
                  {i.who && <span className="muted small"> · {i.who}</span>}
                </li>
              ))}
            </ol>
          );
        }}
      </Show>
    </Section>
  );
}
