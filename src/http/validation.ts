// Two Ajv instances: bodies are validated exactly as sent (no type coercion, no silent removal of
// unknown fields: those are 400s that name them); query strings and headers are coerced, since
// everything there arrives as text, and repeated parameters become arrays.
import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats.js';
import type { FastifySchemaCompiler } from 'fastify';
import { isHoldableInstant } from '../lib/instants.js';

import { isCountry } from '../modules/reference/enumerations.js';
import { isPhone, isTimeZone } from '../modules/reference/validate.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Reference data as JSON Schema formats, so that a bad country, phone or time zone is reported in
 * the same 400 as every other invalid field (codes invalid_country, invalid_phone, invalid_timezone),
 * and the OpenAPI document says which fields are checked against it.
 */
export function addReferenceFormats<A extends { addFormat(name: string, f: (v: string) => boolean): unknown }>(ajv: A): A {
  ajv.addFormat('country', isCountry);
  ajv.addFormat('phone', isPhone);
  ajv.addFormat('timezone', isTimeZone);
  return ajv;
}

const base: Options = {
  allErrors: true,
  removeAdditional: false,
  useDefaults: true,
  discriminator: true,
  strict: false,
};

const rfc3339 = fullFormats['date-time'] as { validate: (v: string) => boolean; compare: (a: string, b: string) => number | undefined };

/**
 * A date-time that JavaScript and PostgreSQL can both hold (lib/instants.ts): before, a leap second
 * passed and `toISOString()` threw (a 500), and year 0000 was stored.
 */
const holdableDateTime = (v: string) => rfc3339.validate(v) && isHoldableInstant(v, Date.parse(v));

function make(options: Options): Ajv {
  const ajv = new Ajv({ ...base, ...options });
  addFormats(ajv);
  ajv.addFormat('date-time', { type: 'string', validate: holdableDateTime, compare: rfc3339.compare });
  addReferenceFormats(ajv);
  return ajv;
}

const bodyAjv = make({ coerceTypes: false });
const textAjv = make({ coerceTypes: 'array' });

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart, contentType }) => {
  // A multipart body is a stream the handler reads part by part; it checks the fields itself
  // (bodyValidator below), so the schema here only documents the form.
  if (httpPart === 'body' && contentType === 'multipart/form-data') return () => true;
  // A file sent as the whole body (an import) is bytes, read by its handler: nothing to validate here.
  if (httpPart === 'body' && (schema as { format?: string }).format === 'binary') return () => true;
  return (httpPart === 'body' ? bodyAjv : textAjv).compile(schema);
};

/** The body validator for data a handler assembles itself (the fields of a multipart form). */
export const bodyValidator = (schema: object) => bodyAjv.compile(schema);
