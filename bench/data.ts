// The seeded population, generated deterministically: 1,000,000 users of one tenant in COPY text
// format, shaped as Kyclo writes them (ULID ids in creation order, a sparse profile document, the
// columns user-view.ts reads), plus one wrapped data key per user, as the keyring makes them.
// Names follow a Zipf law over a few thousand synthetic first and last names, so ?q= has common,
// middling and rare names to search for.
import crypto from 'node:crypto';
import { copyText } from './copy.js';
import type { Db } from '../src/db/database.js';
import { createKeyring, type DataKey } from '../src/crypto/keyring.js';
import { entryMac, macTimestamp } from '../src/modules/audit/authentication.js';
import { entryHash, GENESIS, type EntryRow } from '../src/modules/audit/chain.js';
import { PERSONAL_FIELD } from '../src/modules/events/personal.js';
import type { UserRow } from '../src/modules/users/users.repo.js';
import { toUserView } from '../src/modules/users/user-view.js';

/** mulberry32: small, fast, and the same sequence on every run. */
export function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ONSETS = ['b', 'br', 'c', 'ch', 'd', 'f', 'g', 'gr', 'h', 'j', 'k', 'l', 'm', 'n', 'p', 'r', 's', 'st', 't', 'v', 'w', 'z'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ou'];
const CODAS = ['', 'n', 'r', 'l', 's', 'th', 'm', 'x', 'nd', 'rt'];

/** `count` distinct pronounceable names, capitalised, in a fixed order (rank 1 first). */
export function names(count: number, seed: number): string[] {
  const rnd = prng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const out = new Set<string>();
  while (out.size < count) {
    const syllables = 2 + Math.floor(rnd() * 2);
    let n = '';
    for (let i = 0; i < syllables; i++) n += pick(ONSETS) + pick(VOWELS) + (i === syllables - 1 ? pick(CODAS) : '');
    if (n.length >= 5) out.add(n[0]!.toUpperCase() + n.slice(1));
  }
  return [...out];
}

/** Draws a rank from a Zipf law (exponent 1) over `n` items by inverting the cumulative weights. */
export function zipf(n: number) {
  const cum = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cum[i] = sum += 1 / (i + 1);
  return {
    draw(u: number): number {
      const target = u * sum;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid]! < target) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    },
    /** The share of draws that land on `rank` (0-based). */
    share: (rank: number) => 1 / (rank + 1) / sum,
  };
}

export const FIRST_NAMES = names(2000, 11);
export const LAST_NAMES = names(4000, 23);

const ULID = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function ulidAt(ms: number, rnd: () => number): string {
  let out = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ULID[t % 32] + out;
    t = Math.floor(t / 32);
  }
  for (let i = 0; i < 16; i++) out += ULID[Math.floor(rnd() * 32)];
  return out;
}

const COUNTRIES = ['FR', 'FR', 'FR', 'DE', 'DE', 'ES', 'IT', 'NL', 'BE', 'PT', 'IE', 'GB', 'SE', 'PL', 'AT', 'US'];
const CITIES = ['Paris', 'Lyon', 'Berlin', 'Madrid', 'Milan', 'Amsterdam', 'Brussels', 'Lisbon', 'Dublin', 'London', 'Stockholm', 'Warsaw', 'Vienna'];
const STREETS = ['Rue de la Paix', 'Hauptstrasse', 'Calle Mayor', 'Via Roma', 'Keizersgracht', 'Main Street', 'Avenue Louise'];
const SECTORS = ['retail', 'saas', 'logistics', 'consulting', 'food', 'construction'];

/** One seeded user, before it becomes a COPY line (also what its audit entry and event describe). */
export interface SeededUser {
  i: number;
  id: string;
  ms: number;
  ts: string;
  externalRef: string | null;
  type: 'individual' | 'business';
  country: string;
  status: string;
  statusReason: string | null;
  kyc: string;
  profile: Record<string, unknown>;
  metadata: Record<string, unknown>;
  tags: string[];
}

/**
 * The seeded population, one user at a time, always the same sequence (so the audit entries and
 * events can be generated in a pass of their own). Created_at spreads over three years, in id order.
 */
export function* seededUsers(count: number): Generator<SeededUser> {
  const rnd = prng(42);
  const first = zipf(FIRST_NAMES.length);
  const last = zipf(LAST_NAMES.length);
  const end = Date.UTC(2025, 0, 1);
  const start = end - 3 * 365 * 86400_000;
  const step = Math.floor((end - start) / count);
  for (let i = 0; i < count; i++) {
    const ms = start + i * step;
    const id = `usr_${ulidAt(ms, rnd)}`;
    const ts = new Date(ms).toISOString();
    const business = rnd() < 0.1;
    const country = COUNTRIES[Math.floor(rnd() * COUNTRIES.length)]!;
    const r = rnd();
    const status = r < 0.92 ? 'active' : r < 0.96 ? 'flagged' : r < 0.98 ? 'suspended' : r < 0.99 ? 'blocked' : 'closed';
    const statusReason = status === 'active' ? null : status === 'closed' ? 'user_request' : 'compliance_review';
    const k = rnd();
    const kyc = k < 0.6 ? 'verified' : k < 0.9 ? 'unverified' : k < 0.95 ? 'pending' : 'rejected';
    // French mobiles +33 6 10… to 6 38…: all valid numbers (6 39 and 6 90–97 are not allocated, and
    // POST /v1/users and the import refuse them; 9 % of the seeded users had one).
    const phone = `+336${String(10_000_000 + Math.floor(rnd() * 28_999_999))}`;
    const city = CITIES[Math.floor(rnd() * CITIES.length)]!;
    const address = { line1: `${1 + Math.floor(rnd() * 200)} ${STREETS[Math.floor(rnd() * STREETS.length)]}`, city, postcode: String(10000 + Math.floor(rnd() * 89999)) };
    let profile: Record<string, unknown>;
    if (business) {
      const name = `${LAST_NAMES[last.draw(rnd())]} ${SECTORS[Math.floor(rnd() * SECTORS.length)]} ${i}`;
      profile = {
        legal_name: name, registration_number: `RCS${100_000_000 + i}`, email: `contact${i}@example.com`, phone, address,
        legal_form: 'SAS', sector: SECTORS[Math.floor(rnd() * SECTORS.length)],
      };
    } else {
      const fn = FIRST_NAMES[first.draw(rnd())]!;
      const ln = LAST_NAMES[last.draw(rnd())]!;
      const dob = `${1950 + Math.floor(rnd() * 55)}-${String(1 + Math.floor(rnd() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rnd() * 28)).padStart(2, '0')}`;
      profile = {
        first_name: fn, last_name: ln, email: `${fn.toLowerCase()}.${ln.toLowerCase()}${i}@example.com`, phone,
        date_of_birth: dob, nationality: country, address, occupation: 'Engineer', language: 'fr',
      };
    }
    const metadata = rnd() < 0.5 ? { segment: business ? 'smb' : 'retail', source: 'import' } : {};
    const tags = rnd() < 0.2 ? ['vip'] : [];
    const externalRef = rnd() < 0.7 ? `cus_${i}` : null;
    yield { i, id, ms, ts, externalRef, type: business ? 'business' : 'individual', country, status, statusReason, kyc, profile, metadata, tags };
  }
}

/** COPY chunks of `chunkRows` lines, one per seeded user, made as they are sent. */
export function* linesOf<T>(items: Iterable<T>, line: (item: T) => string, chunkRows = 5000): Generator<string> {
  let buf = '';
  let n = 0;
  for (const item of items) {
    buf += line(item);
    if (++n % chunkRows === 0) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

/** The COPY line of a seeded user, columns as in USER_COPY_COLUMNS. */
export function userLine(tenantId: string, u: SeededUser): string {
  const verified = u.kyc === 'verified';
  return (
    [
      tenantId, u.id, u.externalRef, u.type, u.country, u.status, u.statusReason, u.ts, u.kyc, verified ? '2' : null, verified ? u.ts : null,
      JSON.stringify(u.profile), JSON.stringify(u.metadata), u.tags.length ? `{${u.tags.join(',')}}` : '{}', '1', u.ts, u.ts,
    ]
      .map(copyText)
      .join('\t') + '\n'
  );
}

export const USER_COPY_COLUMNS =
  'tenant_id, id, external_ref, type, country, status, status_reason, status_changed_at, kyc_status, kyc_level, kyc_verified_at, profile, metadata, tags, version, created_at, updated_at';

export const KEY_COPY_COLUMNS = 'tenant_id, user_id, key_id, wrapped_key, master_key_id';

export const AUDIT_COPY_COLUMNS =
  'tenant_id, seq, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, ' +
  'changed_fields, request_id, ip, details, personal_enc, mac';
export const SEAL_COPY_COLUMNS = 'tenant_id, chain_seq, entry_seq, prev_hash, hash';
export const EVENT_COPY_COLUMNS = 'tenant_id, id, type, user_id, occurred_at, actor_key_id, request_id, data, personal_enc';

/**
 * A seeded user's data key, derived from the master key and the user id so that every pass (the
 * keys, the events sealed with them) finds the same key without holding a million of them.
 */
export function seededDataKey(masterKey: Buffer, userId: string): DataKey {
  // One-shot hashes (crypto.hash): an Hmac object per user cost more than the rest of the line.
  const key = crypto.hash('sha256', Buffer.concat([masterKey, Buffer.from(`:kyclo bench data key:${userId}`)]), 'buffer') as unknown as Buffer;
  const keyId = `dk_${crypto.hash('sha256', Buffer.concat([masterKey, Buffer.from(`:kyclo bench key id:${userId}`)]), 'hex').slice(0, 16)}`;
  return { keyId, key };
}

/**
 * The user's data key, wrapped by the master key exactly as src/crypto/keyring.ts does (AES-256-GCM,
 * 12-byte IV, AAD kyclo-data-key:tenant:user:key, stored as IV || ciphertext || tag), so Kyclo's
 * writes find and unwrap an existing key as they would for users it created itself. Returns the COPY
 * text line of user_keys.
 */
export function keyLine(tenantId: string, userId: string, masterKey: Buffer, masterKeyId: string): string {
  const { keyId, key } = seededDataKey(masterKey, userId);
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(`kyclo-data-key:${tenantId}:${userId}:${keyId}`));
  const wrapped = Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]);
  return `${tenantId}\t${userId}\t${keyId}\t\\\\x${wrapped.toString('hex')}\t${masterKeyId}\n`;
}

/**
 * Each seeded user's history as Kyclo would have written it: the `user.created` audit entry, MACed
 * and sealed into the tenant's chain with the project's own functions (`entryMac`, `entryHash`), and
 * the `user.created` event with its personal part sealed with the user's data key, already fanned
 * out (not in event_outbox). `chain` carries the chain from one entry to the next; at the end it is
 * the tenant's head. The chain's hashes are kept (32 bytes each) for `sealLines`, the audit_seals rows.
 */
export class History {
  private readonly rnd = prng(7);
  private readonly keyring: ReturnType<typeof createKeyring>;
  readonly chain: { seq: bigint; chainSeq: bigint; hash: string };
  private readonly hashes: Buffer;
  private readonly start: { chainSeq: bigint; hash: string };

  constructor(
    private readonly o: {
      tenantId: string; masterKey: Buffer; macKey: Buffer; chainKey: Buffer; keyId: string; firstSeq: bigint; users: number;
      /** The tenant's head to chain on (its creation is sealed first: a history begins with it); genesis when absent. */
      head?: { chainSeq: bigint; hash: string };
    },
  ) {
    this.hashes = Buffer.alloc(o.users * 32);
    // sealWith touches no database.
    this.keyring = createKeyring({ db: undefined as unknown as Db, masterKey: o.masterKey });
    this.start = o.head ?? { chainSeq: 0n, hash: GENESIS };
    this.chain = { seq: o.firstSeq - 1n, chainSeq: this.start.chainSeq, hash: this.start.hash };
  }

  /** The request that created the user: one id shared by its audit entry and its event. */
  private requestId(u: SeededUser) {
    return `req_${u.i.toString(36).padStart(8, '0')}`;
  }

  /** The entry of the user's creation (or, given `o`, of another action with its details, as an import writes). */
  auditLine(u: SeededUser, o: { action: string; details: Record<string, unknown> } = { action: 'user.created', details: {} }): string {
    const c = this.chain;
    c.seq += 1n;
    c.chainSeq += 1n;
    const content = {
      tenant_id: this.o.tenantId, id: `aud_${ulidAt(u.ms, this.rnd)}`, occurred_at: macTimestamp(new Date(u.ms)), actor_type: 'api_key',
      actor_key_id: this.o.keyId, actor_role: 'OWNER', action: o.action, outcome: 'applied', target_type: 'user', target_id: u.id,
      user_id: u.id, changed_fields: [] as string[], request_id: this.requestId(u), ip: '127.0.0.1', details: o.details, personal_enc: null,
    };
    const mac = entryMac(this.o.macKey, content);
    const row: EntryRow = { ...content, seq: c.seq.toString(), mac, chain_seq: null, prev_hash: null, hash: null };
    const prev = c.hash;
    c.hash = entryHash(row, c.chainSeq.toString(), prev, this.o.chainKey);
    this.hashes.write(c.hash, Number(c.chainSeq - this.start.chainSeq - 1n) * 32, 'hex');
    return (
      [
        content.tenant_id, row.seq, content.id, content.occurred_at, 'api_key', content.actor_key_id, 'OWNER', content.action, 'applied', 'user',
        u.id, u.id, '{}', content.request_id, content.ip, JSON.stringify(o.details), null, mac,
      ]
        .map(copyText)
        .join('\t') + '\n'
    );
  }

  /** The audit_seals rows of the entries auditLine made, in chain order (after every auditLine). */
  *sealLines(): Generator<string> {
    const n = Number(this.chain.chainSeq - this.start.chainSeq);
    let prev = this.start.hash;
    for (let i = 0; i < n; i++) {
      const hash = this.hashes.toString('hex', i * 32, i * 32 + 32);
      yield `${this.o.tenantId}\t${this.start.chainSeq + BigInt(i) + 1n}\t${this.o.firstSeq + BigInt(i)}\t${prev}\t${hash}\n`;
      prev = hash;
    }
  }

  eventLine(u: SeededUser): string {
    const t = this.o.tenantId;
    const at = new Date(u.ms);
    // The row as the user's creation wrote it (users.repo.ts newRow), as a literal of one shape.
    const row = {
      tenant_id: t, id: u.id, external_ref: u.externalRef, type: u.type, country: u.country, profile: u.profile, metadata: u.metadata, tags: u.tags,
      status: 'active', status_reason: null, status_changed_at: at, kyc_status: 'unverified', kyc_level: null, kyc_verified_at: null,
      pending_changes: [], version: 1, created_at: at, updated_at: at, external_ref_hash: null, legal_hold: false, legal_hold_reason: null,
      erasure_requested_at: null, erasure_scheduled_for: null, erased_at: null, risk: null, kyc_sub_status: null, required_actions: [],
    } as UserRow;
    const personal = this.keyring.sealWith(seededDataKey(this.o.masterKey, u.id), t, u.id, PERSONAL_FIELD, { user: toUserView(row) });
    return (
      [t, `evt_${ulidAt(u.ms, this.rnd)}`, 'user.created', u.id, u.ts, this.o.keyId, this.requestId(u), JSON.stringify({ user_id: u.id, type: u.type }), personal]
        .map(copyText)
        .join('\t') + '\n'
    );
  }
}
