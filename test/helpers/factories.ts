// Valid request bodies, overridable field by field.
let seq = 0;

export function individual(overrides: Record<string, unknown> = {}) {
  seq++;
  return {
    type: 'individual',
    external_ref: `crm-${process.pid}-${Date.now()}-${seq}`,
    country: 'FR',
    title: 'mr',
    first_name: 'Alex',
    last_name: 'Oak',
    gender: 'male',
    date_of_birth: '1982-05-31',
    place_of_birth: 'Edgewood',
    birth_country: 'FR',
    nationality: 'FR',
    email: `alex.oak.${seq}@example.com`,
    phone: '+33611111111',
    language: 'fr',
    timezone: 'Europe/Paris',
    pep: false,
    address: { line1: '33 rosewood road', city: 'Paris', postcode: '75017' },
    ...overrides,
  };
}

export function business(overrides: Record<string, unknown> = {}) {
  seq++;
  return {
    type: 'business',
    external_ref: `biz-${process.pid}-${Date.now()}-${seq}`,
    country: 'GB',
    legal_name: 'Oak & Rosewood Ltd',
    registration_number: '12345678',
    incorporation_date: '2015-03-02',
    legal_form: 'ltd',
    website: 'https://oak.example.com',
    employees_range: '11_50',
    monthly_transactions: 1200,
    transaction_frequency: 'daily',
    sector: 'retail',
    email: `finance.${seq}@oak.example.com`,
    phone: '+442079460000',
    address: { line1: '1 Market Street', city: 'London', postcode: 'EC1A 1AA' },
    ...overrides,
  };
}
