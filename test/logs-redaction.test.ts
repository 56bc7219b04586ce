// Logs never hold personal data or secrets, at any level: every line the app writes at trace (pino
// output captured from a stream handed to buildApp) is searched for the API key and for canaries
// sent in query strings, bodies and multipart uploads.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { checkContract } from './helpers/contract.js';
import { createKeyring } from '../src/crypto/keyring.js';
import { createDb, type Db } from '../src/db/database.js';
import { memoryLimiter } from '../src/http/rate-limit.js';
import { defaultBlobStore } from '../src/storage/blob-store.js';
import { client, createTenant, type Client } from './helpers/app.js';
import { createDatabaseFromTemplate } from './helpers/databases.js';
import { fileBytes, individual, multipartBody } from './helpers/factories.js';

const lines: string[] = [];
let app: FastifyInstance;
let db: Db;
let api: Client;
let apiKey: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const database = await createDatabaseFromTemplate(inject('pgServerUrl'), inject('templateDb'));
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-logs-'));
  db = createDb(database.url, { max: 4 });
  const stream = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
  app = await buildApp({
    db, keyring: createKeyring({ db, masterKey: Buffer.from(inject('masterKey'), 'base64') }), logLevel: 'trace', logStream: stream,
    webhookTargets: { allowHttp: true, allowPrivate: true }, limiter: memoryLimiter(), blobs: defaultBlobStore(dataDir),
  });
  checkContract(app);
  await app.ready();
  const t = await createTenant(db);
  apiKey = t.ownerKey;
  api = client(app, apiKey);
  cleanup = async () => {
    await app.close();
    await db.destroy();
    await database.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
});
afterAll(() => cleanup());

const canary = (tag: string) => `cnry${tag}${crypto.randomBytes(5).toString('hex')}`;

describe('request logs at trace level', () => {
  it('hold neither the API key nor any personal value sent in a query string, a body or a multipart upload', async () => {
    const ref = canary('ref');
    const mail = `${canary('mail')}@example.com`;
    const user = await api.post('/v1/users', individual({ external_ref: ref, email: mail }));
    expect(user.statusCode, user.body).toBe(201);
    const id = user.json().id as string;
    const searched = [canary('q'), ref, mail];
    expect((await api.get(`/v1/users?q=${encodeURIComponent(searched[0]!)}&limit=5`)).statusCode).toBe(200);
    expect((await api.get(`/v1/users?external_ref=${encodeURIComponent(ref)}`)).json().data).toHaveLength(1);
    expect((await api.get(`/v1/users?q=${encodeURIComponent(mail)}`)).statusCode).toBe(200);
    // The lookup by external ref has it in the path (before: logged as is, at info already).
    expect((await api.get(`/v1/users/by-external-ref/${encodeURIComponent(ref)}`)).json().id).toBe(id);
    expect((await api.get(`/v1/users/by-external-ref/${encodeURIComponent(ref)}x?limit=1`)).statusCode).toBe(404);
    // A 400 and an unknown route, both with a personal value in the query string.
    expect((await api.get(`/v1/users?limit=0&q=${encodeURIComponent(mail)}`)).statusCode).toBe(400);
    expect((await api.get(`/v1/nowhere?email=${encodeURIComponent(mail)}`)).statusCode).toBe(404);
    // The multipart parser logs its options, request headers included, at trace.
    const { payload, contentType } = multipartBody({ type: 'passport', country: 'FR', issuing_authority: canary('auth') }, { file: { bytes: fileBytes('jpeg', canary('scan')), type: 'image/jpeg' } });
    const form = await api.call({ method: 'POST', url: `/v1/users/${id}/documents`, body: payload, headers: { 'content-type': contentType } });
    expect(form.statusCode, form.body).toBe(201);

    const text = lines.join('');
    const leaked = [apiKey, apiKey.slice(-12), ...searched].filter((c) => text.includes(c));
    console.log(`logs: ${lines.length} lines at trace, ${leaked.length} secrets or canaries found`);
    expect(leaked).toEqual([]);
    expect(text).not.toMatch(/cnry(q|ref|mail)/);
    // The capture works: the requests are there, at trace, with their redacted query strings.
    expect(text).toContain('"level":10');
    expect(text).toContain('/v1/users?q=[redacted]&limit=5');
    expect(text).toContain('/v1/users/by-external-ref/[redacted]?limit=1');
    expect(text).toContain('busboyOptions');
  });
});
