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

// Files whose first bytes are what the server checks; the rest is whatever a test wants to find (or
// not find) later, e.g. an erasure canary.
const MAGIC = {
  png: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  jpeg: Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  pdf: Buffer.from('%PDF-1.7\n'),
} as const;
const MEDIA = { png: 'image/png', jpeg: 'image/jpeg', pdf: 'application/pdf' } as const;

export function fileBytes(kind: keyof typeof MAGIC, body = `file ${++seq}`): Buffer {
  return Buffer.concat([MAGIC[kind], Buffer.from(body)]);
}

export function dataUri(kind: keyof typeof MAGIC, body?: string, declared: string = MEDIA[kind]): string {
  return `data:${declared};base64,${fileBytes(kind, body).toString('base64')}`;
}

/** A JSON physical-document upload. */
export function physicalDocument(type = 'proof_of_address', overrides: Record<string, unknown> = {}) {
  return { kind: 'physical', type, content: dataUri('png'), ...overrides };
}

/** A multipart/form-data body: text fields and files, with its content type. */
export function multipartBody(fields: Record<string, string>, files: Record<string, { bytes: Buffer; type: string; name?: string }>) {
  const boundary = `----kyclo${Date.now()}${++seq}`;
  const chunks: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  for (const [k, f] of Object.entries(files)) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"; filename="${f.name ?? `${k}.bin`}"\r\nContent-Type: ${f.type}\r\n\r\n`));
    chunks.push(f.bytes, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
