// The contract check itself (test/helpers/contract.ts): an answer the document does not declare —
// its status, media type, a header, or its body — is reported, so it fails the test that got it.
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkContract, contractStats } from './helpers/contract.js';
import { completeDocument } from '../src/http/openapi.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = Fastify();
  await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 't', version: '1' } }, transformObject: (d) => completeDocument(('openapiObject' in d ? d.openapiObject : d.swaggerObject) as never) as never });
  const Thing = { type: 'object', properties: { id: { type: 'string', pattern: '^thg_' } }, required: ['id'] };
  app.get('/things/:id', {
    schema: { operationId: 'getThing', params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 200: { ...Thing, description: 'The thing' } } },
    handler: async (req, reply) => {
      const { id } = req.params as { id: string };
      if (id === 'teapot') return reply.code(418 as 200).send({ id }); // on purpose: a status the route does not declare
      if (id === 'thg_header') reply.header('etag', '"1"');
      if (id === 'thg_text') return reply.type('text/plain').send('thg_1');
      return { id };
    },
  });
  // As the real app does on every answer (the document requires it).
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    done(null, payload);
  });
  checkContract(app);
  await app.ready();
});
afterAll(() => app.close());

async function mismatchesOf(url: string): Promise<string[]> {
  await app.inject({ url });
  return contractStats.mismatches.splice(0);
}

describe('the contract check', () => {
  it('passes an answer the document declares', async () => {
    expect(await mismatchesOf('/things/thg_1')).toEqual([]);
  });

  it('reports an undeclared status, header, media type and a body that breaks the schema', async () => {
    expect(await mismatchesOf('/things/teapot')).toEqual([expect.stringContaining('GET /things/{id} → 418: status not declared')]);
    expect(await mismatchesOf('/things/thg_header')).toEqual([expect.stringContaining('header etag sent but not declared')]);
    expect(await mismatchesOf('/things/thg_text')).toEqual([expect.stringContaining('media type text/plain not declared')]);
    expect(await mismatchesOf('/things/nope')).toEqual([expect.stringMatching(/body does not match: data\/id must match pattern/)]);
  });
});
