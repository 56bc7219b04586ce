// The seeded population, generated deterministically: 1,000,000 users of one tenant in COPY text
// format, shaped as Kyclo writes them (ULID ids in creation order, a sparse profile document, the
// columns user-view.ts reads), plus one wrapped data key per user, as the keyring makes them.
// Names follow a Zipf law over a few thousand synthetic first and last names, so ?q= has common,
// middling and rare names to search for.
import crypto from 'node:crypto';
import { copyText } from './copy.js';

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

/**
 * Yields COPY text for `users` in chunks of `chunkRows`, columns as in USER_COPY_COLUMNS, and calls
 * `onUser` with each id (for the data keys). Created_at spreads over three years, in id order.
 */
export function* userChunks(opts: { tenantId: string; count: number; chunkRows?: number; onUser: (id: string) => void }): Generator<string> {
  const { tenantId, count, chunkRows = 5000, onUser } = opts;
  const rnd = prng(42);
  const first = zipf(FIRST_NAMES.length);
  const last = zipf(LAST_NAMES.length);
  const end = Date.UTC(2025, 0, 1);
  const start = end - 3 * 365 * 86400_000;
  const step = Math.floor((end - start) / count);
  let buf = '';
  for (let i = 0; i < count; i++) {
    const ms = start + i * step;
    const id = `usr_${ulidAt(ms, rnd)}`;
    onUser(id);
    const ts = new Date(ms).toISOString();
    const business = rnd() < 0.1;
    const country = COUNTRIES[Math.floor(rnd() * COUNTRIES.length)]!;
    const r = rnd();
    const status = r < 0.92 ? 'active' : r < 0.96 ? 'flagged' : r < 0.98 ? 'suspended' : r < 0.99 ? 'blocked' : 'closed';
    const statusReason = status === 'active' ? null : status === 'closed' ? 'user_request' : 'compliance_review';
    const k = rnd();
    const kyc = k < 0.6 ? 'verified' : k < 0.9 ? 'unverified' : k < 0.95 ? 'pending' : 'rejected';
    const phone = `+336${String(10_000_000 + Math.floor(rnd() * 89_999_999))}`;
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
    const tags = rnd() < 0.2 ? '{vip}' : '{}';
    const verified = kyc === 'verified';
    buf +=
      [
        tenantId, id, rnd() < 0.7 ? `cus_${i}` : null, business ? 'business' : 'individual', country, status, statusReason, ts,
        kyc, verified ? '2' : null, verified ? ts : null, JSON.stringify(profile), JSON.stringify(metadata), tags, '1', ts, ts,
      ]
        .map(copyText)
        .join('\t') + '\n';
    if ((i + 1) % chunkRows === 0) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

export const USER_COPY_COLUMNS =
  'tenant_id, id, external_ref, type, country, status, status_reason, status_changed_at, kyc_status, kyc_level, kyc_verified_at, profile, metadata, tags, version, created_at, updated_at';

export const KEY_COPY_COLUMNS = 'tenant_id, user_id, key_id, wrapped_key, master_key_id';

/**
 * One data key per user, wrapped by the master key exactly as src/crypto/keyring.ts does
 * (AES-256-GCM, 12-byte IV, AAD kyclo-data-key:tenant:user:key, stored as IV || ciphertext || tag),
 * so Kyclo's writes find an existing key as they would for users it created itself. Returns the
 * COPY text line of user_keys.
 */
export function keyLine(tenantId: string, userId: string, masterKey: Buffer, masterKeyId: string): string {
  const random = crypto.randomBytes(8 + 32 + 12);
  const keyId = `dk_${random.subarray(0, 8).toString('hex')}`;
  const iv = random.subarray(40, 52);
  const cipher = crypto.createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(`kyclo-data-key:${tenantId}:${userId}:${keyId}`));
  const wrapped = Buffer.concat([iv, cipher.update(random.subarray(8, 40)), cipher.final(), cipher.getAuthTag()]);
  return `${tenantId}\t${userId}\t${keyId}\t\\\\x${wrapped.toString('hex')}\t${masterKeyId}\n`;
}

/** COPY chunks of one line per item, made as they are sent. */
export function* keyChunks(items: string[], line: (item: string) => string, chunkRows = 5000): Generator<string> {
  for (let i = 0; i < items.length; i += chunkRows) {
    let buf = '';
    for (const item of items.slice(i, i + chunkRows)) buf += line(item);
    yield buf;
  }
}
