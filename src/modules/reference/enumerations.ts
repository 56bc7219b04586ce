// The published enumerations: one list per name, each value a stable code and an English label.
// Schemas validate against these same lists, so what /v1/enumerations shows is what the API accepts.
import countries from 'i18n-iso-countries';

export interface EnumValue {
  code: string;
  label: string;
}

const list = (pairs: Record<string, string>): EnumValue[] =>
  Object.entries(pairs).map(([code, label]) => ({ code, label }));

const countryNames = countries.getNames('en', { select: 'official' });
const COUNTRIES: EnumValue[] = Object.keys(countries.getAlpha2Codes())
  .sort()
  .map((code) => ({ code, label: countryNames[code] ?? code }));

export const ENUMERATIONS = {
  countries: COUNTRIES,
  nationalities: COUNTRIES,
  genders: list({ male: 'Male', female: 'Female', non_binary: 'Non-binary', undisclosed: 'Prefers not to say' }),
  titles: list({ mr: 'Mr', mrs: 'Mrs', ms: 'Ms', miss: 'Miss', mx: 'Mx', dr: 'Dr', prof: 'Prof' }),
  employment_types: list({
    employed: 'Employed', self_employed: 'Self-employed', unemployed: 'Unemployed', student: 'Student',
    retired: 'Retired', homemaker: 'Homemaker', other: 'Other',
  }),
  income_ranges: list({
    under_10k: 'Under 10,000', '10k_25k': '10,000 – 25,000', '25k_50k': '25,000 – 50,000',
    '50k_100k': '50,000 – 100,000', '100k_250k': '100,000 – 250,000', over_250k: 'Over 250,000',
  }),
  sources_of_funds: list({
    salary: 'Salary', savings: 'Savings', investments: 'Investments', inheritance: 'Inheritance',
    business_income: 'Business income', pension: 'Pension', gift: 'Gift', sale_of_property: 'Sale of property', other: 'Other',
  }),
  employees_ranges: list({ '1_10': '1 – 10', '11_50': '11 – 50', '51_250': '51 – 250', '251_1000': '251 – 1,000', over_1000: 'Over 1,000' }),
  transaction_frequencies: list({ daily: 'Daily', weekly: 'Weekly', monthly: 'Monthly', occasionally: 'Occasionally' }),
  user_types: list({ individual: 'Individual', business: 'Business' }),
  statuses: list({
    active: 'Active', flagged: 'Flagged for review', suspended: 'Suspended (frozen)', blocked: 'Blocked', closed: 'Closed',
  }),
  kyc_statuses: list({
    unverified: 'Unverified', pending: 'Pending', verified: 'Verified', rejected: 'Rejected', review_required: 'Review required',
  }),
  reason_codes: list({
    fraud_suspected: 'Fraud suspected', account_takeover_reported: 'Account takeover reported',
    compliance_review: 'Compliance review', sanctions_match: 'Sanctions match', aml_alert: 'AML alert',
    kyc_failed: 'KYC failed', review_cleared: 'Review cleared', user_request: 'User request', dormant: 'Dormant',
    deceased: 'Deceased', erasure_requested: 'Erasure requested (GDPR)', other: 'Other',
  }),
  relationship_types: list({
    beneficial_owner: 'Beneficial owner', director: 'Director', legal_representative: 'Legal representative',
    authorised_signatory: 'Authorised signatory', shareholder: 'Shareholder', parent: 'Parent account',
  }),
  // The compliance profile (issue 16 §2).
  risk_ratings: list({ low: 'Low', medium: 'Medium', high: 'High', prohibited: 'Prohibited (every capability denied)' }),
  risk_statuses: list({ cleared: 'Cleared', pending: 'Pending', rejected: 'Rejected', unknown: 'Unknown' }),
  kyc_sub_statuses: list({
    pending_document_submission: 'Pending document submission', submitted: 'Submitted', pending_bank_verification: 'Pending bank verification',
    waiting_for_approval: 'Waiting for approval', approved: 'Approved',
  }),
  required_action_codes: list({
    provide_field: 'Provide or correct a field', provide_document: 'Provide a document', renew_document: 'Renew an expired document',
    confirm_information: 'Confirm information', complete_questionnaire: 'Complete a questionnaire', other: 'Other',
  }),
  account_purposes: list({
    everyday_spending: 'Everyday spending', savings: 'Savings', salary: 'Receiving salary', investments: 'Investments',
    international_transfers: 'International transfers', business_payments: 'Business payments', crypto_assets: 'Crypto-assets', other: 'Other',
  }),
  marital_statuses: list({
    single: 'Single', married: 'Married', civil_partnership: 'Civil partnership', separated: 'Separated', divorced: 'Divorced',
    widowed: 'Widowed', undisclosed: 'Prefers not to say',
  }),
  origins: list({ operator: 'Operator', user: 'User', system: 'System' }),
  roles: list({
    OWNER: 'Owner', ADMIN: 'Administrator', COMPLIANCE_OFFICER: 'Compliance officer', DEVELOPER: 'Developer', READER: 'Reader',
  }),
  document_types: list({
    passport: 'Passport', national_id: 'National identity card', driving_licence: 'Driving licence',
    residence_permit: 'Residence permit', proof_of_address: 'Proof of address', bank_statement: 'Bank statement',
    utility_bill: 'Utility bill', selfie: 'Selfie', certificate_of_incorporation: 'Certificate of incorporation',
    articles_of_association: 'Articles of association', audited_financials: 'Audited financials',
    shareholder_register: 'Shareholder register', ssn: 'Social security number', passport_number: 'Passport number',
    driving_licence_number: 'Driving licence number', ein: 'Employer identification number', tax_id: 'Tax identification number',
  }),
} satisfies Record<string, EnumValue[]>;

export type EnumerationName = keyof typeof ENUMERATIONS;

export const codes = (name: EnumerationName): string[] => ENUMERATIONS[name].map((v) => v.code);

export const isCountry = (code: string): boolean => countries.isValid(code) && code === code.toUpperCase();
