// The `matchmove` profile: MatchMove's user objects (v2 users). Its reference describes each field
// in words; the names below are those words in MatchMove's snake_case, and the README's table is the
// contract. Decisions:
// - external_ref: ref_id (the API consumer's own reference), else matchmove:<id>; id is kept.
// - user_type customer → individual, corporate → business.
// - status: active → active; suspended (also the documented spelling "suspened") → suspended;
//   blacklisted → blocked; terminated → closed; rejected → closed (reason kyc_failed); the pending
//   states are an active account whose KYC is pending. sub_status and risk_status → metadata (a risk
//   rating is set by this tenant's officers, with a rating and a reason MatchMove's flag does not carry).
// - kyc_status completed → verified (kyc_processed_date as verified_at, else the import), in_progress → pending,
//   pending → pending when documents were submitted (kyc_sub_status), unverified otherwise.
// - mobile_country_code + mobile → E.164; birth {date, city, country}; the first address, or the one
//   of type residential, is the address.
// - the compliance profile: kyc_sub_status → kyc.sub_status; marital_status, employment_type and
//   purpose_of_account converted to Kyclo's codes; employer {name, address, phone}; email_verified and
//   mobile_verified (1/0) → email_verified, phone_verified; fatca_crs_relevance, fatca_crs_confirmation
//   → fatca_crs; data_terms_signed_date → terms_accepted_at; annual_income_range → income_range when
//   one of Kyclo's bands holds it. A value that does not convert → metadata.
import type { ImportProfile, MappedRow } from './profile.js';
import { present, str } from './profile.js';
import { incomeBand, mapping, toBool, toCode, toE164, toInstant, vendorTime } from './convert.js';
import { codes } from '../../reference/enumerations.js';

const STATUS: Record<string, { status: string; reason: string | null }> = {
  active: { status: 'active', reason: null }, suspended: { status: 'suspended', reason: 'other' }, suspened: { status: 'suspended', reason: 'other' },
  blacklisted: { status: 'blocked', reason: 'other' }, terminated: { status: 'closed', reason: 'other' }, rejected: { status: 'closed', reason: 'kyc_failed' },
};
const GENDERS: Record<string, string> = { male: 'male', female: 'female', m: 'male', f: 'female' };
const TITLES: Record<string, string> = { mr: 'mr', mrs: 'mrs', ms: 'ms', miss: 'miss', dr: 'dr', prof: 'prof', mx: 'mx' };
// Vendor words that name one of Kyclo's codes (the codes themselves match as they are).
const EMPLOYMENT: Record<string, string> = { salaried: 'employed', full_time: 'employed', part_time: 'employed', pensioner: 'retired' };
const MARITAL: Record<string, string> = { widow: 'widowed', widower: 'widowed' };
const PURPOSES: Record<string, string> = { saving: 'savings', investment: 'investments' };

/** The compliance profile's fields, on both types; answers kyc.sub_status when it is one of Kyclo's. */
function compliance(m: ReturnType<typeof mapping>, r: Record<string, unknown>, business: boolean, country: string | undefined): string | null {
  const coded = (from: string, to: string, list: Parameters<typeof codes>[0], synonyms: Record<string, string> = {}) => {
    const v = toCode(r[from], codes(list), synonyms);
    if (v) {
      m.set(to, v);
      m.take(from);
    } else m.keep(from, r[from], `not one of ${list}`);
  };
  const flag = (from: string, to: string) => {
    const v = toBool(r[from]);
    if (v !== undefined) {
      m.set(to, v);
      m.take(from);
    } else m.keep(from, r[from], 'not 1 or 0');
  };
  coded('purpose_of_account', 'purpose_of_account', 'account_purposes', PURPOSES);
  flag('email_verified', 'email_verified');
  flag('mobile_verified', 'phone_verified');
  const terms = toInstant(r.data_terms_signed_date);
  if (terms) {
    m.set('terms_accepted_at', terms);
    m.take('data_terms_signed_date');
  } else m.keep('data_terms_signed_date', r.data_terms_signed_date, 'not a date-time');
  const fatca: Record<string, unknown> = {};
  const relevant = toBool(r.fatca_crs_relevance);
  if (relevant !== undefined) {
    fatca.relevant = relevant;
    m.take('fatca_crs_relevance');
  } else m.keep('fatca_crs_relevance', r.fatca_crs_relevance, 'not 1 or 0');
  const confirmed = toInstant(r.fatca_crs_confirmation);
  if (confirmed) {
    fatca.confirmed_at = confirmed;
    m.take('fatca_crs_confirmation');
  } else m.keep('fatca_crs_confirmation', r.fatca_crs_confirmation, 'not a date-time');
  if (Object.keys(fatca).length) m.set('fatca_crs', fatca);
  if (!business) {
    coded('marital_status', 'marital_status', 'marital_statuses', MARITAL);
    coded('employment_type', 'employment_type', 'employment_types', EMPLOYMENT);
    const e = r.employer;
    if (e && typeof e === 'object' && !Array.isArray(e)) {
      const d = e as Record<string, unknown>;
      const employer: Record<string, unknown> = {};
      for (const k of ['name', 'address'] as const) {
        if (typeof d[k] === 'string' && present(d[k])) employer[k] = String(d[k]).trim();
        else m.keep(`employer.${k}`, d[k], 'not text');
      }
      const phone = toE164(d.phone, country);
      if (phone) employer.phone = phone;
      else m.keep('employer.phone', d.phone, 'not a valid phone number');
      for (const [k, v] of Object.entries(d)) if (!['name', 'address', 'phone'].includes(k)) m.keep(`employer.${k}`, v);
      m.take('employer');
      if (Object.keys(employer).length) m.set('employer', employer);
    } else m.keep('employer', e, 'not an object');
  }
  const sub = toCode(r.kyc_sub_status, codes('kyc_sub_statuses'));
  if (sub) m.take('kyc_sub_status');
  else m.keep('kyc_sub_status', r.kyc_sub_status, 'not one of kyc_sub_statuses');
  return sub ?? null;
}

export const matchmoveProfile: ImportProfile = {
  name: 'matchmove',
  summary: 'MatchMove user objects (v2 users: names, birth, addresses, employment, account and KYC statuses)',
  map(r): MappedRow {
    const m = mapping('matchmove', r);
    const sourceId = present(r.id) ? String(r.id) : null;
    const ref = str(r.ref_id);
    m.take('id', 'ref_id');
    const business = String(r.user_type ?? '').toLowerCase() === 'corporate';
    m.set('type', business ? 'business' : 'individual');
    m.take('user_type');
    const addresses = Array.isArray(r.addresses) ? (r.addresses as Array<Record<string, unknown>>) : [];
    const home = addresses.find((a) => String(a.type ?? '').toLowerCase() === 'residential') ?? addresses[0];
    const country = str(r.country) ?? str(home?.country);
    m.set('country', country);
    m.take('country');
    if (home) {
      const address = { line1: str(home.address_1 ?? home.line1), line2: str(home.address_2 ?? home.line2), city: str(home.city), state: str(home.state), postcode: str(home.zipcode ?? home.postal_code) };
      m.set('address', Object.fromEntries(Object.entries(address).filter(([, v]) => v)));
      if (addresses.length > 1) m.keep('addresses', addresses.filter((a) => a !== home), 'more than one address');
      else m.take('addresses');
    }
    const dial = str(r.mobile_country_code);
    const phone = toE164(dial && present(r.mobile) ? `+${dial.replace(/^\+/, '')}${String(r.mobile).replace(/^0+/, '')}` : r.mobile, country);
    if (phone) {
      m.set('phone', phone);
      m.take('mobile', 'mobile_country_code');
    } else if (present(r.mobile)) m.keep('mobile', `${dial ?? ''} ${String(r.mobile)}`.trim(), 'not a valid phone number');
    m.set('email', r.email);
    m.take('email');
    if (business) {
      m.set('legal_name', r.preferred_name ?? r.first_name);
      m.take('preferred_name', 'first_name');
    } else {
      // title, else salutation; the other (a salutation beside a title) goes to metadata.
      const from = present(r.title) ? 'title' : 'salutation';
      const title = TITLES[String(r[from] ?? '').toLowerCase().replace('.', '')];
      if (title) {
        m.set('title', title);
        m.take(from);
      } else m.keep(from, r[from], 'not one of titles');
      m.set('first_name', r.first_name);
      m.set('middle_name', r.middle_name);
      m.set('last_name', r.last_name);
      m.set('maiden_name', r.maiden_name);
      m.set('preferred_name', r.preferred_name);
      m.set('nationality', r.nationality);
      m.set('occupation', r.job_title);
      m.take('first_name', 'middle_name', 'last_name', 'maiden_name', 'preferred_name', 'nationality', 'job_title');
      const band = incomeBand(r.annual_income_range);
      if (band) {
        m.set('income_range', band);
        m.take('annual_income_range');
      } else m.keep('annual_income_range', r.annual_income_range, 'not within one of income_ranges');
      const gender = GENDERS[String(r.gender ?? '').toLowerCase()];
      if (gender) {
        m.set('gender', gender);
        m.take('gender');
      }
      const birth = r.birth as Record<string, unknown> | undefined;
      if (birth && typeof birth === 'object') {
        m.set('date_of_birth', str(birth.date));
        m.set('place_of_birth', birth.city);
        m.set('birth_country', birth.country);
        m.take('birth');
      }
      if (typeof r.pep === 'boolean') {
        m.set('pep', r.pep);
        m.take('pep');
      }
    }
    if (r.metadata && typeof r.metadata === 'object' && !Array.isArray(r.metadata)) m.set('metadata', r.metadata);
    m.take('metadata');
    const account = STATUS[String(r.status ?? 'active').toLowerCase()] ?? { status: 'active', reason: null };
    const kyc = String(r.kyc_status ?? '').toLowerCase();
    const kycSubStatus = compliance(m, r, business, country);
    const kycStatus = kyc === 'completed' ? 'verified' : kyc === 'in_progress' || (kyc === 'pending' && String(r.kyc_sub_status ?? '') === 'submitted') ? 'pending' : String(r.status) === 'rejected' ? 'rejected' : 'unverified';
    m.take('status', 'kyc_status', 'kyc_processed_date', 'created_date', 'created_at');
    m.finish(sourceId);
    return {
      external_ref: ref ?? (sourceId ? `matchmove:${sourceId}` : undefined),
      source_id: sourceId,
      user: m.user,
      state: {
        status: account.status, status_reason: account.reason, status_origin: 'operator', kyc_status: kycStatus,
        kyc_verified_at: kycStatus === 'verified' ? (vendorTime(r.kyc_processed_date) ?? null) : null, kyc_verified_at_from_import: true, kyc_sub_status: kycSubStatus,
        created_at: vendorTime(r.created_date ?? r.created_at) ?? null,
      },
      moved: m.moved,
      problems: [],
    };
  },
};
