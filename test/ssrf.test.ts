// The SSRF guard against IPv6 spellings that carry an IPv4 address (6to4, NAT64, IPv4-compatible,
// IPv4-translated) and deprecated site-local addresses, and against being used as a resolver
// oracle: no answer a tenant can read (registration, delivery log) says what a name resolved to.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/workers/dispatcher.js';
import { describeSendError, isPrivateAddress } from '../src/modules/webhooks/ssrf.js';
import { client, createTenant, createTestContext, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { quiet } from './helpers/receiver.js';

const ADDRESS = /\b\d{1,3}(\.\d{1,3}){3}\b|::1\b|\[?[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,}\]?/i;

// [address, refused?, why]
const TABLE: Array<[string, boolean, string]> = [
  // 6to4 (2002::/16): judged by the IPv4 address in bits 16–47.
  ['2002:7f00:1::', true, '6to4 of 127.0.0.1'],
  ['2002:a00:1::1', true, '6to4 of 10.0.0.1'],
  ['2002:a9fe:a9fe::', true, '6to4 of 169.254.169.254 (cloud metadata)'],
  ['2002:c0a8:101:1::1', true, '6to4 of 192.168.1.1'],
  ['2002:5db8:d822::1', false, '6to4 of 93.184.216.34 (public: allowed)'],
  // IPv4-compatible (::/96, deprecated): refused whatever it carries.
  ['::127.0.0.1', true, 'IPv4-compatible loopback'],
  ['::7f00:1', true, 'IPv4-compatible loopback, hex'],
  ['::a9fe:a9fe', true, 'IPv4-compatible metadata'],
  ['::8.8.8.8', true, 'IPv4-compatible public: still refused (no route exists)'],
  ['::', true, 'unspecified'],
  ['::1', true, 'loopback'],
  // Well-known NAT64 (64:ff9b::/96): judged by the IPv4 address in the last 32 bits.
  ['64:ff9b::127.0.0.1', true, 'NAT64 of 127.0.0.1'],
  ['64:ff9b::a00:1', true, 'NAT64 of 10.0.0.1'],
  ['64:ff9b::a9fe:a9fe', true, 'NAT64 of the metadata address'],
  ['64:ff9b::808:808', false, 'NAT64 of 8.8.8.8 (public: allowed)'],
  // Local-use NAT64 (64:ff9b:1::/48): refused always, its translator is someone's own network.
  ['64:ff9b:1::808:808', true, 'local-use NAT64, public IPv4'],
  ['64:ff9b:1:ffff::a00:1', true, 'local-use NAT64, private IPv4'],
  // Site-local (fec0::/10, deprecated): refused always.
  ['fec0::1', true, 'site-local'],
  ['feff:ffff::1', true, 'site-local, top of the range'],
  // IPv4-mapped and IPv4-translated: judged as the IPv4 address.
  ['::ffff:127.0.0.1', true, 'mapped loopback'],
  ['::ffff:7f00:1', true, 'mapped loopback, hex (how URLs normalise it)'],
  ['::ffff:0:a00:1', true, 'IPv4-translated 10.0.0.1'],
  ['::ffff:808:808', false, 'mapped 8.8.8.8'],
  // Teredo and the other IETF protocol assignments, documentation ranges.
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', true, 'Teredo'],
  ['2001:db8::1', true, 'documentation'],
  ['3fff::1', true, 'documentation (RFC 9637)'],
  ['fd00:ec2::254', true, 'unique local (AWS metadata over IPv6)'],
  ['fe80::1%eth0', true, 'link-local with a zone'],
  ['2606:4700:4700::1111', false, 'public IPv6'],
  ['93.184.216.34', false, 'public IPv4'],
];

describe('the SSRF guard, address by address', () => {
  it.each(TABLE)('%s refused: %s (%s)', (address, refused) => {
    expect(net.isIP(address), 'a valid address').not.toBe(0);
    expect(isPrivateAddress(address)).toBe(refused);
  });
});

describe('registering an endpoint on such an address', () => {
  let strict: TestContext;
  let owner: Client;
  beforeAll(async () => {
    strict = await createTestContext({ webhookTargets: { allowHttp: false, allowPrivate: false } });
    owner = client(strict.app, (await createTenant(strict.db)).ownerKey);
  });
  afterAll(() => strict.close());

  it.each(TABLE.filter(([a]) => !a.includes('%')))('https://[%s]/ → refused %s (%s)', async (address, refused) => {
    const host = address.includes(':') ? `[${address}]` : address;
    const res = await owner.post('/v1/webhook-endpoints', { url: `https://${host}/hook` });
    if (refused) {
      expect(res.statusCode, res.body).toBe(422);
      expect(res.json().code).toBe('webhook.url_private');
      const id = await strict.db.selectFrom('webhook_endpoints').select('id').where('url', 'like', `%${host}%`).executeTakeFirst();
      expect(id).toBeUndefined();
    } else {
      expect(res.statusCode, res.body).toBe(201);
    }
  });

  it('a name that resolves to a private address is refused without saying which address', async () => {
    const res = await owner.post('/v1/webhook-endpoints', { url: 'https://localhost/hook' });
    expect(res.statusCode).toBe(422);
    expect(res.json().code).toBe('webhook.url_private');
    expect(res.body).not.toMatch(/127\.0\.0\.1|::1/);
    expect(res.body).not.toMatch(ADDRESS);
  });
});

describe('the delivery log a tenant reads', () => {
  let ctx: TestContext;
  let api: Client;
  beforeAll(async () => {
    ({ ctx, api } = await openTenantContext());
  });
  afterAll(() => ctx.close());

  async function attemptError(url: string, targets: { allowHttp: boolean; allowPrivate: boolean }) {
    const e = (await api.post('/v1/webhook-endpoints', { url })).json();
    await api.post('/v1/users', individual());
    const dispatcher = createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets, log: quiet });
    await dispatcher.runOnce();
    await dispatcher.close();
    await api.delete(`/v1/webhook-endpoints/${e.id}`);
    const rows = await ctx.db.selectFrom('webhook_attempts').select('error').where('endpoint_id', '=', e.id).execute();
    expect(rows.length).toBeGreaterThan(0);
    return rows.map((r) => r.error ?? '');
  }

  it('does not say what a refused name resolved to', async () => {
    for (const error of await attemptError('http://localhost:8080/hook', { allowHttp: true, allowPrivate: false })) {
      expect(error).toMatch(/private/);
      expect(error).not.toMatch(ADDRESS);
    }
  });

  it('does not name the address a failed connection tried', async () => {
    // A port nothing listens on any more: the connection is refused, and the error would name 127.0.0.1.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    for (const error of await attemptError(`http://localhost:${port}/hook`, { allowHttp: true, allowPrivate: true })) {
      expect(error).not.toBe('');
      expect(error).not.toMatch(ADDRESS);
    }
  });

  it.each([
    ['connect ECONNREFUSED 10.1.2.3:443', 'connect ECONNREFUSED [address]'],
    ['connect ECONNREFUSED ::1:9', 'connect ECONNREFUSED [address]'],
    ['connect ETIMEDOUT [fd00::5]:443', 'connect ETIMEDOUT [address]'],
    ["Hostname/IP does not match certificate's altnames: IP: 10.0.0.7 is not in the cert's list: ", "Hostname/IP does not match certificate's altnames: IP: [address] is not in the cert's list: "],
    ['getaddrinfo ENOTFOUND hooks.example.com', 'getaddrinfo ENOTFOUND hooks.example.com'],
    ['The operation was aborted due to timeout', 'The operation was aborted due to timeout'],
  ])('a send error %j reads %j', (message, shown) => {
    expect(describeSendError(Object.assign(new Error('fetch failed'), { cause: new Error(message) }))).toBe(shown);
  });
});
