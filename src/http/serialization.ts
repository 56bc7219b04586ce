// Response serialization without a validator in the loop. fast-json-stringify serializes an anyOf by
// validating the value against each branch first (Ajv, formats included) — for every nullable field
// of every user in a page. The schemas stay as they are for validation and for the OpenAPI document;
// only the copies handed to the serializer are rewritten into shapes it writes directly:
// - a nullable value (anyOf [T, null], T a primitive, an object or an array) becomes T with
//   `nullable: true`;
// - a union of object schemas (User: individual | business) becomes one object with every
//   property of every branch, and the keys they all require: a view only ever holds its own type's
//   keys, and absent keys are not written, so the same keys and values go out (a business user's
//   own fields after the shared ones).
import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type Schema = Record<string, unknown>;
const NULLABLE_AS_IS = new Set(['string', 'integer', 'number', 'boolean', 'object', 'array']);

const isNull = (s: unknown) => typeof s === 'object' && s !== null && (s as Schema).type === 'null' && Object.keys(s).length <= 2;

function simplify(schema: unknown, external: Record<string, Schema>): unknown {
  if (Array.isArray(schema)) return schema.map((s) => simplify(s, external));
  if (typeof schema !== 'object' || schema === null) return schema;
  const s = schema as Schema;
  const branches = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (branches?.length === 2 && branches.some(isNull)) {
    const other = branches.find((b) => !isNull(b)) as Schema;
    if (typeof other.type === 'string' && NULLABLE_AS_IS.has(other.type) && !other.anyOf && !other.oneOf) {
      const { anyOf: _a, oneOf: _o, ...rest } = s;
      return { ...rest, ...(simplify(other, external) as Schema), nullable: true };
    }
  }
  if (branches && branches.length > 1 && branches.every((b) => refTarget(b, external)?.type === 'object')) {
    const { anyOf: _a, oneOf: _o, discriminator: _d, ...rest } = s;
    const properties: Schema = {};
    const targets = branches.map((b) => simplify(refTarget(b, external), external) as Schema);
    for (const target of targets) {
      for (const [k, v] of Object.entries(target.properties as Schema)) properties[k] ??= k === 'type' ? { type: 'string' } : v;
    }
    // Keys every branch requires stay required: in a union around this one (PATCH answers a user
    // or a dry run) they are what tells the shapes apart.
    const required = targets.map((t) => (t.required as string[] | undefined) ?? []).reduce((a, b) => a.filter((k) => b.includes(k)));
    return { ...rest, type: 'object', properties, ...(required.length ? { required } : {}) };
  }
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'enum' || k === 'const' ? v : simplify(v, external)]));
}

function refTarget(s: unknown, external: Record<string, Schema>): Schema | undefined {
  if (typeof s !== 'object' || s === null) return undefined;
  const ref = (s as Schema).$ref;
  return typeof ref === 'string' ? external[ref] : (s as Schema);
}

type Build = (external: Record<string, Schema>, options: unknown) => (route: { schema: Schema; [k: string]: unknown }) => unknown;

/** Fastify's `schemaController.compilersFactory.buildSerializer`, around its default one. */
export const buildSerializer: Build = (external, options) => {
  const simplified = Object.fromEntries(Object.entries(external).map(([id, s]) => [id, simplify(s, external) as Schema]));
  const compile = (SerializerSelector as unknown as () => Build)()(simplified, options);
  return (route) => compile({ ...route, schema: simplify(route.schema, external) as Schema });
};
