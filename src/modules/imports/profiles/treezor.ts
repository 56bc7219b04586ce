// The `treezor` profile: Treezor's User object (GET /v1/users answers {"users": [...]}).
// - external_ref: userTag when it is a valid reference (printable, no spaces), else treezor:<userId>;
//   userId is always kept (metadata.treezor.id and the audit entry).
// - account state from userStatus and isFrozen/isFreezed: CANCELED → closed, frozen → suspended.
// - KYC state from kycReview (0 none, 1 pending, 2 validated, 3 refused) and kycLevel (in metadata
//   for a user never reviewed); a validated user, whose date Treezor does not give, counts from the import.
// - userTypeId 1 is a natural person; 2 (company), 3 (NGO) and 4 (government body) are businesses.
// - dates without a zone (createdDate) are read as UTC; "" and 0000-00-00 are absent values.
// - phone → phone, mobile → mobile (E.164, read in country); the sanctions questionnaire's four 0/1
//   answers → sanctions.*, specifiedUSPerson 0/1 → fatca_crs.relevant (the compliance profile).
// - incomeRange (thousands of euros a year) → income_range when one of Kyclo's bands holds it.
import type { ImportProfile, MappedRow } from './profile.js';
import { present, str } from './profile.js';
import { employeesRange, incomeBand, mapping, toBool, toE164, vendorTime } from './convert.js';

const TITLES: Record<string, string> = { M: 'mr', MR: 'mr', MME: 'mrs', MRS: 'mrs', MLLE: 'miss', MISS: 'miss', MS: 'ms' };
const KYC_REVIEW: Record<string, string> = { '0': 'unverified', '1': 'pending', '2': 'verified', '3': 'rejected' };
// legalNumberOfEmployeeRange as Treezor writes it → [low, high].
const EMPLOYEES: Record<string, [number, number]> = { '0': [0, 0], '1-9': [1, 9], '10-99': [10, 99], '100-249': [100, 249], '250-...': [250, Infinity] };
const REF = /^[\x21-\x7e]{1,128}$/;
const SANCTIONS: Array<[string, string]> = [
  ['activityOutsideEu', 'activity_outside_eu'], ['economicSanctions', 'economic_sanctions'],
  ['residentCountriesSanctions', 'resident_countries_sanctions'], ['involvedSanctions', 'involved_sanctions'],
];

export const treezorProfile: ImportProfile = {
  name: 'treezor',
  summary: 'Treezor User objects (a JSON {"users": [...]} answer, or one user per line)',
  map(r): MappedRow {
    const m = mapping('treezor', r);
    const sourceId = present(r.userId) ? String(r.userId) : null;
    const tag = str(r.userTag);
    const externalRef = tag && REF.test(tag) ? tag : sourceId ? `treezor:${sourceId}` : undefined;
    m.take('userId');
    if (tag && tag !== externalRef) m.keep('userTag', tag, 'not a valid external_ref');
    else m.take('userTag');
    const business = [2, 3, 4].includes(Number(r.userTypeId));
    m.set('type', business ? 'business' : 'individual');
    m.take('userTypeId');
    const country = str(r.country);
    m.set('country', country);
    m.take('country', 'countryName');
    m.set('email', r.email);
    m.take('email');
    // Treezor has both numbers, as Kyclo does: each in its place if it reads as a number.
    for (const f of ['phone', 'mobile']) {
      const e164 = toE164(r[f], country);
      if (e164) {
        m.set(f, e164);
        m.take(f);
      } else m.keep(f, r[f], 'not a valid phone number');
    }
    const address = { line1: str(r.address1), line2: str(r.address2), line3: str(r.address3), city: str(r.city), state: str(r.state), postcode: str(r.postcode) };
    if (Object.values(address).some(Boolean)) m.set('address', Object.fromEntries(Object.entries(address).filter(([, v]) => v)));
    m.take('address1', 'address2', 'address3', 'city', 'state', 'postcode');
    const secondary = {
      line1: str(r.secondaryAddress1), line2: str(r.secondaryAddress2), line3: str(r.secondaryAddress3), city: str(r.secondaryCity),
      state: str(r.secondaryState), postcode: str(r.secondaryPostcode), country: str(r.secondaryCountry),
    };
    if (Object.values(secondary).some(Boolean)) m.set('mailing_address', Object.fromEntries(Object.entries(secondary).filter(([, v]) => v)));
    m.take('secondaryAddress1', 'secondaryAddress2', 'secondaryAddress3', 'secondaryCity', 'secondaryState', 'secondaryPostcode', 'secondaryCountry');
    if (business) {
      m.set('legal_name', r.legalName);
      m.set('registration_number', r.legalRegistrationNumber);
      m.set('vat_number', r.legalTvaNumber);
      m.set('incorporation_date', str(r.legalRegistrationDate));
      m.set('legal_form', present(r.legalForm) ? String(r.legalForm) : undefined);
      m.set('sector', r.legalSector);
      m.take('legalName', 'legalRegistrationNumber', 'legalTvaNumber', 'legalRegistrationDate', 'legalForm', 'legalSector');
      const range = EMPLOYEES[String(r.legalNumberOfEmployeeRange ?? '')];
      const kyclo = range && employeesRange(Math.max(range[0], 1), range[1]);
      if (kyclo) {
        m.set('employees_range', kyclo);
        m.take('legalNumberOfEmployeeRange');
      } else m.keep('legalNumberOfEmployeeRange', r.legalNumberOfEmployeeRange, 'no Kyclo range holds it');
    } else {
      const title = TITLES[String(r.title ?? '').toUpperCase()];
      if (title) m.set('title', title);
      else m.keep('title', r.title, 'not a known title');
      m.set('first_name', r.firstname);
      m.set('last_name', r.lastname);
      m.set('middle_name', r.middleNames);
      m.set('date_of_birth', str(r.birthday));
      m.set('place_of_birth', r.placeOfBirth);
      m.set('birth_country', r.birthCountry);
      m.set('nationality', r.nationality);
      m.set('occupation', r.occupation);
      m.set('tax_residence', r.taxResidence);
      m.set('tax_number', r.taxNumber);
      m.take('firstname', 'lastname', 'middleNames', 'birthday', 'placeOfBirth', 'birthCountry', 'nationality', 'occupation', 'taxResidence', 'taxNumber');
      // Treezor's incomeRange is in thousands of euros a year (0-18, 19-23, 24-27, 28-35, 36-56, 57-*).
      const band = incomeBand(r.incomeRange, 1000);
      if (band) {
        m.set('income_range', band);
        m.take('incomeRange');
      } else m.keep('incomeRange', r.incomeRange, 'straddles income_ranges');
    }
    // The sanctions questionnaire and the US-person flag are 0/1 (null: not answered), on both types.
    const sanctions: Record<string, boolean> = {};
    for (const [f, to] of SANCTIONS) {
      const answer = toBool(r[f]);
      if (answer !== undefined) {
        sanctions[to] = answer;
        m.take(f);
      } else m.keep(f, r[f], 'not 0 or 1');
    }
    if (Object.keys(sanctions).length) m.set('sanctions', sanctions);
    const usPerson = toBool(r.specifiedUSPerson);
    if (usPerson !== undefined) {
      m.set('fatca_crs', { relevant: usPerson });
      m.take('specifiedUSPerson');
    } else m.keep('specifiedUSPerson', r.specifiedUSPerson, 'not 0 or 1');
    const lang = str(r.language)?.toLowerCase();
    if (lang && /^[a-z]{2}$/.test(lang)) {
      m.set('language', lang);
      m.take('language');
    }
    if (present(r.timezone) && /^[A-Za-z_]+\/[A-Za-z_/]+$/.test(String(r.timezone))) {
      m.set('timezone', r.timezone);
      m.take('timezone');
    }

    const frozen = Number(r.isFrozen ?? 0) === 1 || Number(r.isFreezed ?? 0) === 1;
    const canceled = String(r.userStatus ?? '').toUpperCase() === 'CANCELED';
    m.take('userStatus', 'isFrozen', 'isFreezed', 'kycReview', 'createdDate');
    const kyc = KYC_REVIEW[String(r.kycReview ?? 0)] ?? 'unverified';
    const level = Number(r.kycLevel);
    // Kyclo's level is the one a verification granted: a user Treezor never reviewed has none here,
    // so its kycLevel stays in metadata (an unverified user with a level is refused).
    const usable = Number.isInteger(level) && level > 0 && level <= 10;
    if (usable && kyc === 'unverified') m.keep('kycLevel', r.kycLevel, 'no KYC review: a level comes with a verification');
    else m.take('kycLevel');
    m.finish(sourceId);
    return {
      external_ref: externalRef,
      source_id: sourceId,
      user: m.user,
      state: {
        status: canceled ? 'closed' : frozen ? 'suspended' : 'active',
        status_reason: canceled || frozen ? 'other' : null,
        status_origin: 'operator',
        kyc_status: kyc,
        kyc_level: usable && kyc !== 'unverified' ? level : null,
        // Treezor records no date of its review.
        kyc_verified_at_from_import: true,
        created_at: vendorTime(r.createdDate) ?? null,
      },
      moved: m.moved,
      problems: [],
    };
  },
};
