// Uploads under attack, over real sockets: one tenant's slow uploads must not delay another
// tenant's, a body that stalls is cut by the read deadline and leaves nothing behind, and 24
// concurrent 10 MiB uploads stream through a real server process in bounded memory.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { fileBytes, individual } from './helpers/factories.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

const MiB = 1024 * 1024;
const PNG = fileBytes('png', '').subarray(0, 8);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

/**
 * One request over its own socket. The body is `head`, then (when `trickle` is set) one byte every
 * `trickle` ms until `stop()`, or else `rest` chunks written with backpressure. Content-Length is
 * what the caller declares, so a trickling body is always "not finished yet".
 */
function send(
  port: number,
  opts: { path: string; key: string; contentType: string; length: number; head: Buffer; rest?: Iterable<Buffer>; trickle?: number },
) {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const req = http.request({
    host: '127.0.0.1', port, method: 'POST', path: opts.path, agent: false,
    headers: { authorization: `Bearer ${opts.key}`, 'content-type': opts.contentType, 'content-length': String(opts.length) },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), ms: Date.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  answer.catch(() => undefined); // a stopped trickle rejects; callers that care await it
  req.flushHeaders();
  void (async () => {
    if (!req.write(opts.head)) await new Promise((r) => req.once('drain', r));
    if (opts.trickle) {
      timer = setInterval(() => req.write(Buffer.from(' ')), opts.trickle);
      return;
    }
    for (const chunk of opts.rest ?? []) {
      if (req.destroyed) return;
      if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
    }
    req.end();
  })();
  return {
    answer,
    stop: () => {
      clearInterval(timer);
      req.destroy();
    },
  };
}

/** A multipart upload whose file part is `size` bytes (PNG magic, then filler), declared in full. */
function multipart(type: string, size: number, fill: (offset: number, n: number) => Buffer = (_o, n) => Buffer.alloc(n, 0x61)) {
  const boundary = `----kyclo-adversary-${crypto.randomUUID()}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n${type}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="scan.png"\r\nContent-Type: image/png\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const CHUNK = 64 * 1024;
  function* body(): Generator<Buffer> {
    yield PNG;
    for (let off = PNG.length; off < size; off += CHUNK) yield fill(off, Math.min(CHUNK, size - off));
    yield tail;
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, head, body, length: head.length + size + tail.length };
}

/** A JSON data-URI upload of `size` file bytes. */
function jsonUpload(type: string, size: number) {
  const file = Buffer.concat([PNG, Buffer.alloc(size - PNG.length, 0x62)]);
  const text = Buffer.from(JSON.stringify({ kind: 'physical', type, content: `data:image/png;base64,${file.toString('base64')}` }));
  return { contentType: 'application/json', text, length: text.length };
}

async function listen(ctx: TestContext): Promise<number> {
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  return (ctx.app.server.address() as AddressInfo).port;
}

const newUser = async (ctx: TestContext, key: string) => {
  const res = await client(ctx.app, key).post('/v1/users', individual());
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
};
const docsOf = (ctx: TestContext, tenantId: string) => ctx.db.selectFrom('documents').selectAll().where('tenant_id', '=', tenantId).execute();
async function filesIn(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('one tenant’s slow uploads do not delay another tenant', () => {
  let ctx: TestContext;
  let port: number;
  const slow: Array<{ stop(): void }> = [];
  // A long read deadline and slot wait: only the per-tenant slots can keep tenant B fast here.
  beforeAll(async () => {
    ctx = await createTestContext({ uploads: { slotsPerTenant: 2, slots: 8, slotWaitMs: 20_000, readTimeoutMs: 60_000 } });
    port = await listen(ctx);
  });
  afterAll(async () => {
    for (const s of slow) s.stop();
    await ctx.close();
  });

  it('tenant A trickles two JSON and two multipart uploads; tenant B’s uploads complete at once and are stored', async () => {
    const a = await createTenant(ctx.db);
    const b = await createTenant(ctx.db);
    const userA = await newUser(ctx, a.ownerKey);
    const userB = await newUser(ctx, b.ownerKey);
    const json = jsonUpload('bank_statement', 256 * 1024);
    const form = multipart('bank_statement', 256 * 1024);
    for (let i = 0; i < 2; i++) {
      slow.push(send(port, { path: `/v1/users/${userA}/documents`, key: a.ownerKey, contentType: json.contentType, length: json.length, head: json.text.subarray(0, 100), trickle: 200 }));
      slow.push(send(port, { path: `/v1/users/${userA}/documents`, key: a.ownerKey, contentType: form.contentType, length: form.length, head: Buffer.concat([form.head, PNG]), trickle: 200 }));
    }
    await new Promise((r) => setTimeout(r, 700)); // A's requests are authenticated and hold their slots

    const started = Date.now();
    const [viaJson, viaForm] = await Promise.all([
      send(port, { path: `/v1/users/${userB}/documents`, key: b.ownerKey, contentType: json.contentType, length: json.length, head: json.text }).answer,
      send(port, { path: `/v1/users/${userB}/documents`, key: b.ownerKey, contentType: form.contentType, length: form.length, head: form.head, rest: form.body() }).answer,
    ]);
    const elapsed = Date.now() - started;
    console.log(`tenant B's uploads beside tenant A's slow sockets: ${elapsed} ms (json ${viaJson.ms} ms, multipart ${viaForm.ms} ms)`);
    expect(viaJson.status, viaJson.body.toString()).toBe(201);
    expect(viaForm.status, viaForm.body.toString()).toBe(201);
    expect(elapsed).toBeLessThan(3_000);

    const rows = await docsOf(ctx, b.tenantId);
    expect(rows.map((r) => r.id).sort()).toEqual([JSON.parse(viaJson.body.toString()).id, JSON.parse(viaForm.body.toString()).id].sort());
    for (const r of rows) {
      expect(r.size).toBe(256 * 1024);
      expect((await fs.stat(path.join(ctx.dataDir, 'documents', ...r.blob_key!.split('/')))).size).toBeGreaterThan(256 * 1024);
    }
    expect(await docsOf(ctx, a.tenantId)).toEqual([]);
  }, 40_000);
});

describe('slots and deadlines', () => {
  let ctx: TestContext;
  let port: number;
  beforeAll(async () => {
    ctx = await createTestContext({ uploads: { slotsPerTenant: 1, slots: 8, slotWaitMs: 800, readTimeoutMs: 1_500 } });
    port = await listen(ctx);
  });
  afterAll(() => ctx.close());

  it('a tenant over its slots is answered 429 document.too_many_uploads with Retry-After once the slot wait is over', async () => {
    const t = await createTenant(ctx.db);
    const user = await newUser(ctx, t.ownerKey);
    const form = multipart('bank_statement', 64 * 1024);
    const hog = send(port, { path: `/v1/users/${user}/documents`, key: t.ownerKey, contentType: form.contentType, length: form.length, head: Buffer.concat([form.head, PNG]), trickle: 100 });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const res = await send(port, { path: `/v1/users/${user}/documents`, key: t.ownerKey, contentType: form.contentType, length: form.length, head: form.head, rest: form.body() }).answer;
      expect(res.status, res.body.toString()).toBe(429);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(res.body.toString())).toMatchObject({ status: 429, code: 'document.too_many_uploads' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(res.ms).toBeGreaterThanOrEqual(700);
      expect(res.ms).toBeLessThan(1_400); // the slot wait, not the hog's read deadline
    } finally {
      hog.stop();
    }
    expect(await docsOf(ctx, t.tenantId)).toEqual([]);
  });

  it.each([
    ['multipart', () => { const f = multipart('bank_statement', 1 * MiB); return { contentType: f.contentType, length: f.length, head: Buffer.concat([f.head, PNG, Buffer.alloc(64 * 1024, 1)]) }; }],
    ['JSON', () => { const j = jsonUpload('bank_statement', 1 * MiB); return { contentType: j.contentType, length: j.length, head: j.text.subarray(0, 64 * 1024) }; }],
  ])('a %s body that stalls is cut with 408 request.body_timeout, leaves no row and no blob, and frees its slot', async (_name, make) => {
    const t = await createTenant(ctx.db);
    const user = await newUser(ctx, t.ownerKey);
    const stalled = send(port, { path: `/v1/users/${user}/documents`, key: t.ownerKey, ...make() });
    try {
      const res = await Promise.race([stalled.answer, new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5_000))]);
      expect(res.status, res.body.toString()).toBe(408);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(res.body.toString())).toMatchObject({ status: 408, code: 'request.body_timeout' });
      expect(res.ms).toBeGreaterThanOrEqual(1_400);
    } finally {
      stalled.stop();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(await docsOf(ctx, t.tenantId)).toEqual([]);
    expect(await filesIn(path.join(ctx.dataDir, 'documents', t.tenantId))).toEqual([]);

    // The slot is free again: the tenant's next upload goes through at once.
    const form = multipart('bank_statement', 64 * 1024);
    const next = await send(port, { path: `/v1/users/${user}/documents`, key: t.ownerKey, contentType: form.contentType, length: form.length, head: form.head, rest: form.body() }).answer;
    expect(next.status, next.body.toString()).toBe(201);
    expect(next.ms).toBeLessThan(700);
  });

  it('an upload whose client goes away mid-file leaves no row and no blob', async () => {
    const t = await createTenant(ctx.db);
    const user = await newUser(ctx, t.ownerKey);
    const form = multipart('bank_statement', 2 * MiB);
    const gone = send(port, { path: `/v1/users/${user}/documents`, key: t.ownerKey, contentType: form.contentType, length: form.length, head: Buffer.concat([form.head, PNG, Buffer.alloc(512 * 1024, 2)]), trickle: 50 });
    await new Promise((r) => setTimeout(r, 400));
    gone.stop();
    await new Promise((r) => setTimeout(r, 400));
    expect(await docsOf(ctx, t.tenantId)).toEqual([]);
    expect(await filesIn(path.join(ctx.dataDir, 'documents', t.tenantId))).toEqual([]);
  });
});

describe('24 concurrent 10 MiB multipart uploads to a server process', () => {
  let ctx: TestContext;
  let server: Server;
  let dataDir: string;
  beforeAll(async () => {
    ctx = await createTestContext();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-uploads-'));
    server = await startServer(cliEnv({ DATABASE_URL: ctx.databaseUrl, KYCLO_DATA_DIR: dataDir, PORT: '0', KYCLO_SERVE_WORKERS: 'false' }));
  }, 60_000);
  afterAll(async () => {
    await server?.stop('SIGTERM');
    await ctx.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const status = async (pid: number) => {
    const text = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  };

  it('keep the process under 300 MB RSS; all 24 are stored and download byte for byte', async () => {
    const pid = server.child.pid!;
    const port = Number(new URL(server.baseUrl).port);
    const before = await status(pid);
    // Six tenants of four uploads: within the default slots (4 per tenant, 32 per process).
    const tenants = await Promise.all(Array.from({ length: 6 }, () => createTenant(ctx.db)));
    const users = await Promise.all(tenants.map(async (t) => {
      const res = await fetch(`${server.baseUrl}/v1/users`, {
        method: 'POST', headers: { authorization: `Bearer ${t.ownerKey}`, 'content-type': 'application/json' }, body: JSON.stringify(individual()),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    }));

    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, (await status(pid)).rss);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const base = crypto.randomBytes(64 * 1024);
    const started = Date.now();
    const uploads = await Promise.all(Array.from({ length: 24 }, async (_x, i) => {
      const t = tenants[i % 6]!;
      const hash = crypto.createHash('sha256');
      // Distinct content per upload and per chunk, hashed as it is sent: nothing 10 MiB is held here.
      hash.update(PNG);
      const form = multipart('bank_statement', 10 * MiB, (off, n) => {
        const chunk = Buffer.from(base.subarray(0, n));
        chunk.writeUInt32BE(i, 0);
        chunk.writeUInt32BE(off, 4);
        hash.update(chunk);
        return chunk;
      });
      const res = await send(port, { path: `/v1/users/${users[i % 6]}/documents`, key: t.ownerKey, contentType: form.contentType, length: form.length, head: form.head, rest: form.body() }).answer;
      expect(res.status, res.body.toString()).toBe(201);
      return { key: t.ownerKey, id: JSON.parse(res.body.toString()).id as string, sha: hash.digest('hex') };
    }));
    const uploadMs = Date.now() - started;
    sampling = false;
    await sampler;
    const after = await status(pid);
    console.log(`24 × 10 MiB multipart: ${uploadMs} ms; server RSS ${before.rss.toFixed(0)} MB before, peak sampled ${peak.toFixed(0)} MB, VmHWM ${after.hwm.toFixed(0)} MB`);
    expect(Math.max(peak, after.hwm)).toBeLessThan(300);

    const rows = await ctx.db.selectFrom('documents').select(['id', 'size']).where('id', 'in', uploads.map((u) => u.id)).execute();
    expect(rows).toHaveLength(24);
    expect(rows.every((r) => r.size === 10 * MiB)).toBe(true);
    for (const u of uploads) {
      const got = await new Promise<{ status: number; sha: string; size: number }>((resolve, reject) => {
        http.get(`${server.baseUrl}/v1/documents/${u.id}/content`, { headers: { authorization: `Bearer ${u.key}` } }, (res) => {
          const h = crypto.createHash('sha256');
          let size = 0;
          res.on('data', (c: Buffer) => { h.update(c); size += c.length; });
          res.on('end', () => resolve({ status: res.statusCode!, sha: h.digest('hex'), size }));
          res.on('error', reject);
        }).on('error', reject);
      });
      expect(got).toEqual({ status: 200, sha: u.sha, size: 10 * MiB });
    }
  }, 60_000);
});
