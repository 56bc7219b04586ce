// The `send` profile: SEND's user objects, individual and business.
// - external_ref: SEND's records carry no platform reference, so send:<id>; the id is kept.
// - a business is a record with type BUSINESS, or with business fields (company_website,
//   number_of_employee, business_type, mailing_address); its first_name is the company's name and
//   its date_of_birth the date of incorporation.
// - mobile_phone is a national number read in the user's country (2106603032 in US → +12106603032).
// - an individual's user_scope → business_scope, its company_details → employer {name, address, phone};
//   a business's user_scope → sector, its business_type → legal_form.
// - status VERIFIED → KYC verified, UNVERIFIED → unverified; the account itself is active.
// - physical and virtual documents are not imported: files and identifier numbers go through the
//   documents API (POST /v1/users/{id}/documents), never into metadata.
import type { ImportProfile, MappedRow } from './profile.js';
import { present, str } from './profile.js';
import { employeesRange, mapping, toE164, toWebsite, vendorTime } from './convert.js';

const GENDERS: Record<string, string> = { male: 'male', female: 'female', m: 'male', f: 'female', other: 'non_binary', non_binary: 'non_binary' };
const FREQUENCIES: Record<string, string> = { DAILY: 'daily', WEEKLY: 'weekly', MONTHLY: 'monthly', OCCASIONALLY: 'occasionally' };
const BUSINESS_FIELDS = ['company_website', 'number_of_employee', 'business_type', 'mailing_address', 'business'];

/** BETWEEN_25_TO_50, LESS_THAN_10, MORE_THAN_1000 → [low, high]. */
function employeeBounds(v: string): [number, number] | undefined {
  const between = /^BETWEEN_(\d+)_TO_(\d+)$/.exec(v);
  if (between) return [Number(between[1]), Number(between[2])];
  const less = /^LESS_THAN_(\d+)$/.exec(v);
  if (less) return [1, Number(less[1]) - 1];
  const more = /^(MORE|GREATER)_THAN_(\d+)$/.exec(v);
  if (more) return [Number(more[2]) + 1, Infinity];
  return undefined;
}

/** company_details {company_name, address, phone_number} → employer; a part that does not convert stays in metadata. */
function employer(m: ReturnType<typeof mapping>, details: unknown, country: string | undefined): void {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return m.keep('company_details', details, 'not an object');
  const d = details as Record<string, unknown>;
  const e: Record<string, unknown> = {};
  for (const [from, to] of [['company_name', 'name'], ['address', 'address']] as const) {
    if (typeof d[from] === 'string' && present(d[from])) e[to] = String(d[from]).trim();
    else m.keep(`company_details.${from}`, d[from], 'not text');
  }
  const phone = toE164(d.phone_number, country);
  if (phone) e.phone = phone;
  else m.keep('company_details.phone_number', d.phone_number, 'not a valid phone number in the user’s country');
  for (const [k, v] of Object.entries(d)) if (!['company_name', 'address', 'phone_number'].includes(k)) m.keep(`company_details.${k}`, v);
  m.take('company_details');
  if (Object.keys(e).length) m.set('employer', e);
}

export const sendProfile: ImportProfile = {
  name: 'send',
  summary: 'SEND user objects, individual and business',
  map(r): MappedRow {
    const m = mapping('send', r);
    const sourceId = present(r.id) ? String(r.id) : null;
    m.take('id');
    const business = String(r.type ?? '').toUpperCase() === 'BUSINESS' || BUSINESS_FIELDS.some((f) => present(r[f]));
    m.take('type');
    m.set('type', business ? 'business' : 'individual');
    const country = str(r.country);
    m.set('country', country);
    m.set('email', r.email);
    m.take('country', 'email');
    const phone = toE164(r.mobile_phone, country);
    if (phone) {
      m.set('phone', phone);
      m.take('mobile_phone');
    } else m.keep('mobile_phone', r.mobile_phone, 'not a valid phone number in the user’s country');
    const address = { line1: str(r.address_line1), line2: str(r.address_line2), city: str(r.city), state: str(r.state), postcode: str(r.zipcode) };
    if (Object.values(address).some(Boolean)) m.set('address', Object.fromEntries(Object.entries(address).filter(([, v]) => v)));
    m.take('address_line1', 'address_line2', 'city', 'state', 'zipcode');
    if (business) {
      m.set('legal_name', r.first_name);
      m.set('incorporation_date', str(r.date_of_birth));
      m.take('first_name', 'date_of_birth');
      const site = toWebsite(r.company_website);
      if (site) {
        m.set('website', site);
        m.take('company_website');
      } else m.keep('company_website', r.company_website, 'not a web address');
      const bounds = present(r.number_of_employee) ? employeeBounds(String(r.number_of_employee)) : undefined;
      const range = bounds && employeesRange(bounds[0], bounds[1]);
      if (range) {
        m.set('employees_range', range);
        m.take('number_of_employee');
      } else m.keep('number_of_employee', r.number_of_employee, 'no Kyclo range holds it');
      const monthly = Number(r.number_of_transaction_per_month);
      if (present(r.number_of_transaction_per_month) && Number.isInteger(monthly) && monthly >= 0) {
        m.set('monthly_transactions', monthly);
        m.take('number_of_transaction_per_month');
      }
      const freq = FREQUENCIES[String(r.transaction_frequency ?? '').toUpperCase()];
      if (freq) {
        m.set('transaction_frequency', freq);
        m.take('transaction_frequency');
      }
      m.set('sector', r.user_scope);
      m.set('legal_form', r.business_type);
      m.take('user_scope', 'business_type');
      const ma = r.mailing_address as Record<string, unknown> | undefined;
      if (ma && typeof ma === 'object') {
        const mailing = { line1: str(ma.address_line1), line2: str(ma.address_line2), city: str(ma.city), state: str(ma.state), postcode: str(ma.zipcode), country: str(ma.country) };
        m.set('mailing_address', Object.fromEntries(Object.entries(mailing).filter(([, v]) => v)));
        m.take('mailing_address');
      }
    } else {
      m.set('first_name', r.first_name);
      m.set('middle_name', r.middle_name);
      m.set('last_name', r.last_name);
      m.set('date_of_birth', str(r.date_of_birth));
      m.set('occupation', r.occupation);
      m.take('first_name', 'middle_name', 'last_name', 'date_of_birth', 'occupation');
      const gender = GENDERS[String(r.gender ?? '').toLowerCase()];
      if (gender) {
        m.set('gender', gender);
        m.take('gender');
      }
      // An individual's user_scope is its line of business; company_details its employer.
      m.set('business_scope', r.user_scope);
      m.take('user_scope');
      employer(m, r.company_details, country);
    }
    m.drop('physical_documents', 'files go through POST /v1/users/{id}/documents');
    m.drop('virtual_documents', 'identifier numbers go through POST /v1/users/{id}/documents, never into metadata');
    const verified = String(r.status ?? '').toUpperCase() === 'VERIFIED';
    m.take('status', 'created_at');
    m.finish(sourceId);
    return {
      external_ref: sourceId ? `send:${sourceId}` : undefined,
      source_id: sourceId,
      user: m.user,
      // SEND records no date of its verification.
      state: { status: 'active', kyc_status: verified ? 'verified' : 'unverified', kyc_verified_at_from_import: true, created_at: vendorTime(r.created_at) ?? null },
      moved: m.moved,
      problems: [],
    };
  },
};
