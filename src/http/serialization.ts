// Response serialization without a validator in the loop. fast-json-stringify serializes an anyOf by
// validating the value against each branch first (Ajv, formats included) — for every nullable field
// of every user in a page. The schemas stay as they are for validation and for the OpenAPI document;
// only the copies handed to the serializer are rewritten into shapes it writes directly:
// - an enum of strings (TypeBox's Enum has no `type`) becomes a plain string: the serializer writes
//   values, it does not check them, and an `enum` left beside `nullable` would make Ajv refuse null
//   wherever the serializer still validates (the `if` of a union below);
// - a nullable value (anyOf [T, null], T a primitive, an object or an array) becomes T with
//   `nullable: true`;
// - a union of object schemas (User: individual | business) becomes one object with every
//   property of every branch: a view only ever holds its own type's keys, and absent keys are not
//   written, so the same keys and values go out, in the view's own order;
// - a union of two object shapes that a required key tells apart (PATCH answers a user, or a dry
//   run with `dry_run`) becomes if/then/else on that key: Ajv checks one `required` instead of
//   validating a whole user against the first branch.
import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type Schema = Record<string, unknown>;
const NULLABLE_AS_IS = new Set(['string', 'integer', 'number', 'boolean', 'object', 'array']);

const isNull = (s: unknown) => typeof s === 'object' && s !== null && (s as Schema).type === 'null' && Object.keys(s).length <= 2;

const isStringEnum = (s: Schema) => s.type === undefined && Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string');

function simplify(schema: unknown, external: Record<string, Schema>): unknown {
  if (Array.isArray(schema)) return schema.map((s) => simplify(s, external));
  if (typeof schema !== 'object' || schema === null) return schema;
  const s = schema as Schema;
  if (isStringEnum(s)) {
    const { enum: _e, ...rest } = s;
    return { ...rest, type: 'string' };
  }
  const branches = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (branches?.length === 2 && branches.some(isNull)) {
    const other = simplify(branches.find((b) => !isNull(b)), external) as Schema;
    if (typeof other.type === 'string' && NULLABLE_AS_IS.has(other.type) && !other.anyOf && !other.oneOf) {
      const { anyOf: _a, oneOf: _o, ...rest } = s;
      return { ...rest, ...other, nullable: true };
    }
  }
  if (branches && branches.length > 1 && branches.every((b) => refTarget(b, external)?.type === 'object')) {
    const { anyOf: _a, oneOf: _o, discriminator: _d, ...rest } = s;
    const targets = branches.map((b) => simplify(refTarget(b, external), external) as Schema);
    return { ...rest, type: 'object', properties: mergeProperties(targets.map((t) => t.properties as Schema)) };
  }
  if (branches?.length === 2) {
    const split = splitByRequiredKey(branches.map((b) => simplify(refTarget(b, external), external) as Schema));
    if (split) {
      const { anyOf: _a, oneOf: _o, discriminator: _d, ...rest } = s;
      return { ...rest, type: 'object', if: { type: 'object', required: [split.key] }, then: split.with, else: split.without };
    }
  }
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'enum' || k === 'const' ? v : simplify(v, external)]));
}

/**
 * Every branch's properties, each key placed after the key that precedes it in its own branch: a
 * business user's fields sit where an individual's do, so each view goes out in its own order. No
 * key is required (fast-json-stringify writes required keys first, which would move them).
 */
function mergeProperties(branches: Schema[]): Schema {
  const order: string[] = [];
  const merged: Schema = {};
  for (const properties of branches) {
    let after = -1;
    for (const [k, v] of Object.entries(properties)) {
      const at = order.indexOf(k);
      if (at >= 0) {
        after = at;
        // Branches that disagree on a key's shape (each event type's own `data`): written as it is.
        if (k !== 'type' && JSON.stringify(merged[k]) !== JSON.stringify(v)) merged[k] = {};
        continue;
      }
      order.splice(++after, 0, k);
      merged[k] = k === 'type' ? { type: 'string' } : v;
    }
  }
  return Object.fromEntries(order.map((k) => [k, merged[k]]));
}

/** Two object shapes where one requires a key the other does not have: that key tells them apart. */
function splitByRequiredKey([a, b]: Schema[]): { key: string; with: Schema; without: Schema } | undefined {
  if (a?.type !== 'object' || b?.type !== 'object') return undefined;
  for (const [one, other] of [[a, b], [b, a]] as const) {
    const otherKeys = Object.keys((other.properties as Schema | undefined) ?? {});
    const key = ((one.required as string[] | undefined) ?? []).find((k) => !otherKeys.includes(k));
    if (key) return { key, with: one, without: other };
  }
  return undefined;
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
  // One serializer per distinct schema, not per route and status: every route answers the same
  // problem document for its 4xx/5xx codes and many answer a user. Compiling each copy again took
  // most of the start (2 s of CPU on this machine) and a 110 MB heap peak the process kept as RSS.
  // A serializer is a pure function of its schema (the external schemas and options are fixed here).
  const compiled = new Map<string, unknown>();
  return (route) => {
    const schema = simplify(route.schema, external) as Schema;
    const key = JSON.stringify(schema);
    let serializer = compiled.get(key);
    if (serializer === undefined) compiled.set(key, (serializer = compile({ ...route, schema })));
    return serializer;
  };
};
