import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ENUMERATIONS, type EnumerationName } from './enumerations.js';
import { AUTH_ERRORS, errors, ListOf } from '../../http/schemas.js';
import { notFound } from '../../http/errors.js';

const NAMES = Object.keys(ENUMERATIONS);
const EnumValue = Type.Object({ code: Type.String(), label: Type.String() }, { title: 'EnumerationValue' });
const Enumeration = Type.Object({ name: Type.Unsafe<string>(Type.Enum(NAMES)), values: Type.Array(EnumValue) }, { title: 'Enumeration', description: 'A published list of codes' });

export async function enumerationRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  r.get('/v1/enumerations', {
    config: { permission: 'users:read' },
    schema: {
      operationId: 'listEnumerations',
      tags: ['Reference data'],
      summary: 'Every published enumeration with its values',
      // The common list shape; every enumeration fits one page, so next_cursor is always null.
      response: { 200: { ...ListOf(Enumeration, 'EnumerationList'), description: 'Every enumeration, on one page' }, ...errors(...AUTH_ERRORS) },
    },
    handler: async () => ({ data: NAMES.map((name) => ({ name, values: ENUMERATIONS[name as EnumerationName] })), next_cursor: null }),
  });
  r.get('/v1/enumerations/:name', {
    config: { permission: 'users:read' },
    schema: {
      operationId: 'getEnumeration',
      tags: ['Reference data'],
      summary: 'One enumeration',
      params: Type.Object({ name: Type.String({ maxLength: 64, description: NAMES.join(', ') }) }),
      response: { 200: { ...Enumeration, description: 'The enumeration' }, ...errors(...AUTH_ERRORS, 404) },
    },
    handler: async (req) => {
      const name = req.params.name;
      if (!Object.hasOwn(ENUMERATIONS, name)) throw notFound('enumeration', name);
      return { name, values: ENUMERATIONS[name as EnumerationName] };
    },
  });
}
