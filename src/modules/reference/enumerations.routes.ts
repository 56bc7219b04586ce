import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ENUMERATIONS, type EnumerationName } from './enumerations.js';
import { AUTH_ERRORS, errors } from '../../http/schemas.js';
import { notFound } from '../../http/errors.js';

const EnumValue = Type.Object({ code: Type.String(), label: Type.String() });
const Enumeration = Type.Object({ name: Type.String(), values: Type.Array(EnumValue) });
const NAMES = Object.keys(ENUMERATIONS);

export async function enumerationRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  r.get('/v1/enumerations', {
    config: { permission: 'users:read' },
    schema: {
      operationId: 'listEnumerations',
      tags: ['Reference data'],
      summary: 'Every published enumeration with its values',
      response: { 200: Type.Object({ data: Type.Array(Enumeration) }), ...errors(...AUTH_ERRORS) },
    },
    handler: async () => ({ data: NAMES.map((name) => ({ name, values: ENUMERATIONS[name as EnumerationName] })) }),
  });
  r.get('/v1/enumerations/:name', {
    config: { permission: 'users:read' },
    schema: {
      operationId: 'getEnumeration',
      tags: ['Reference data'],
      summary: 'One enumeration',
      params: Type.Object({ name: Type.String({ maxLength: 64, description: NAMES.join(', ') }) }),
      response: { 200: Enumeration, ...errors(...AUTH_ERRORS, 404) },
    },
    handler: async (req) => {
      const name = req.params.name;
      if (!Object.hasOwn(ENUMERATIONS, name)) throw notFound('enumeration', name);
      return { name, values: ENUMERATIONS[name as EnumerationName] };
    },
  });
}
