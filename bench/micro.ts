// tsx bench/micro.ts: the micro-benchmarks behind bench/README.md's "Object spreads on the write path",
// so another machine can check them. Each case runs alone in this process (no server, no database),
// warmed up, then timed over many calls; the figure is µs a call, the median of 5 timings. What it
// shows is the shape of the costs (which is dearer, by how much), not what a request costs in a
// server sharing two cores with PostgreSQL, where the same functions measured 2–4× dearer.
import crypto from 'node:crypto';
import { createKeyring } from '../src/crypto/keyring.js';
import { installAuditKeys } from '../src/modules/audit/authentication.js';
import { recordParams } from '../src/modules/audit/write-path.js';
import { checkReferenceData } from '../src/modules/reference/validate.js';
import { compact, documentOf, toUserView } from '../src/modules/users/user-view.js';
import { newRow } from '../src/modules/users/users.repo.js';
import { newId } from '../src/lib/ids.js';
import { mergePersonal } from '../src/modules/events/personal.js';
import type { Db } from '../src/db/database.js';

type Row = Record<string, unknown>;
const sink: unknown[] = [];

/** µs a call: the median of 5 timings of `calls` calls, after a warm-up of as many. */
function time(calls: number, f: (i: number) => unknown): number {
  for (let i = 0; i < calls; i++) sink[i & 1023] = f(i);
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) sink[i & 1023] = f(i);
    runs.push(Number(process.hrtime.bigint() - t) / calls / 1000);
  }
  return runs.sort((a, b) => a - b)[2]!;
}

const line = (label: string, us: number) => process.stdout.write(`${label.padEnd(58)} ${us.toFixed(2).padStart(8)} µs\n`);

// --- Object spreads: a row of 24 columns, copied with extra properties in each shape ---------------
const source: Row = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`c${i}`, i % 3 ? `value ${i}` : i]));
const rows = Array.from({ length: 1024 }, (_, i) => ({ ...source, c0: i }));
const extra = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`);
// Each shape is compiled as its own function, so V8 sees one literal per case, as in real code.
const shape = (body: string) => new Function('r', 'i', `return ${body};`) as (r: Row, i: number) => Row;
const props = (n: number) => extra(n).map((p) => `${p}: i`).join(', ');
process.stdout.write(`Node ${process.version}; a source row of ${Object.keys(source).length} properties\n\nobject shapes\n`);
const spreadCases: Array<[string, string]> = [
  ['{ ...r }', '{ ...r }'],
  ['{ p0, …, p19, ...r } (the spread last)', `{ ${props(20)}, ...r }`],
  ['{ ...r, p0 }', `{ ...r, ${props(1)} }`],
  ['{ ...r, p0, p1, p2 }', `{ ...r, ${props(3)} }`],
  ['{ ...r, p0, …, p7 }', `{ ...r, ${props(8)} }`],
  ['{ ...r, p0, …, p19 }', `{ ...r, ${props(20)} }`],
  ['every property written out ({ c0: r.c0, …, p19 })', `{ ${Object.keys(source).map((k) => `${k}: r.${k}`).join(', ')}, ${props(20)} }`],
];
for (const [label, body] of spreadCases) {
  const f = shape(body);
  line(label, time(100_000, (i) => f(rows[i & 1023]!, i)));
}

// Two objects merged into a new one (an event's data and its opened personal part: mergePersonal).
const datas = rows.map((_, i) => ({ user_id: `usr_${i}`, version: i, changed_fields: ['metadata'] }));
const personals = rows.map((_, i) => ({ previous: { metadata: { a: i } }, current: { metadata: { a: i + 1 } } }));
line('{ ...data, ...personal } (two keys added after a spread)', time(200_000, (i) => ({ ...datas[i & 1023]!, ...personals[i & 1023]! })));
line('Object.assign({}, data, personal)', time(200_000, (i) => Object.assign({}, datas[i & 1023]!, personals[i & 1023]!)));
line('mergePersonal (events/personal.ts)', time(200_000, (i) => mergePersonal(datas[i & 1023]!, personals[i & 1023]!)));

// --- The pure steps of a create, as users.service.ts create() runs them --------------------------
const keyring = createKeyring({ db: null as unknown as Db, masterKey: crypto.randomBytes(32) });
installAuditKeys(keyring.auditKeys);
const actor = { type: 'api_key' as const, tenantId: `ten_${'0'.repeat(26)}`, keyId: `key_${'0'.repeat(26)}`, role: 'OWNER' as const, requestId: `req_${crypto.randomUUID()}`, ip: '127.0.0.1' };
const t = actor.tenantId;
const body = (i: number) => ({ first_name: 'Bench', last_name: 'Runner', email: `bench.${i}@example.com`, phone: '+33612345678' });
const id = newId('usr');
const key = keyring.newDataKey(t, id);
const row = newRow({ tenant_id: t, id, external_ref: null, type: 'individual', country: 'FR', profile: compact(body(0)), metadata: {}, tags: [] }, new Date(), { status: 'active', status_reason: null });
const user = toUserView(row);
const personal = keyring.sealWith(key, t, id, 'personal', { user });
process.stdout.write('\nthe pure steps of POST /v1/users (the bench\'s body)\n');
line('checkReferenceData (country, profile, metadata)', time(50_000, (i) => checkReferenceData({ country: 'FR', ...body(i), metadata: {} })));
line('newId', time(200_000, () => newId('usr')));
line('newDataKey (random key, wrapped with AES-GCM)', time(50_000, () => keyring.newDataKey(t, id)));
line('newRow (every column written out)', time(200_000, (i) => newRow({ tenant_id: t, id, external_ref: null, type: 'individual', country: 'FR', profile: rows[i & 1023]!, metadata: {}, tags: [] }, new Date(), { status: 'active', status_reason: null })));
line('toUserView', time(100_000, () => toUserView(row)));
line('documentOf (a patch\'s document)', time(200_000, () => documentOf(row)));
line('sealWith (the user.created event\'s personal part)', time(50_000, () => keyring.sealWith(key, t, id, 'personal', { user })));
line('recordParams (audit row with its MAC, event row, as JSON)', time(50_000, () =>
  recordParams(actor, { action: 'user.created', targetType: 'user', targetId: id, userId: id, changedFields: [] }, [{ type: 'user.created', userId: id, data: { user_id: id, type: 'individual' }, personal }])));
