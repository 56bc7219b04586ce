// Where a webhook may be sent. https only unless the operator allows http; never to loopback,
// private, link-local, carrier-grade NAT, multicast or cloud-metadata addresses, nor to an IPv6 form
// that carries one of them, unless the operator allows private targets (development, tests). Checked
// when an endpoint is registered and again on every send, against the addresses the connection
// actually uses (no DNS-rebinding window). No error says what a name resolved to.
import dns from 'node:dns';
import net from 'node:net';

export interface TargetPolicy {
  allowHttp: boolean;
  allowPrivate: boolean;
  /** The name servers webhook targets are resolved with (`host:port`); the system's by default. */
  dnsServers?: string[];
}

/** How long one DNS query waits for its answer, and how many times it is sent, before the name counts as unresolvable. */
export const LOOKUP_TIMEOUT_MS = 2_000;
const LOOKUP_TRIES = 2;

/**
 * A target host's addresses, from DNS through c-ares (`dns.Resolver`), not `dns.lookup`: getaddrinfo
 * holds one of libuv's four threads for as long as the system resolver waits (10 s and more behind a
 * name server that never answers) and cannot be cancelled, so one tenant's endpoint on such a name
 * held every thread and stalled every other tenant's sends and the process's file reads. c-ares runs
 * on the event loop with its own timeout and tries, and is cancelled when `signal` aborts (the send's
 * deadline). It reads no /etc/hosts: a webhook target is a public name. With private targets allowed
 * (development, tests: receivers on this machine, `localhost` included) the system resolver is used.
 */
export async function resolveHost(host: string, policy: TargetPolicy, signal?: AbortSignal): Promise<dns.LookupAddress[]> {
  const literal = net.isIP(host);
  if (literal) return [{ address: host, family: literal }];
  if (policy.allowPrivate && !policy.dnsServers) return dns.promises.lookup(host, { all: true }).catch(() => []);
  // RFC 6761: `localhost` and every name under it are the loopback, whatever DNS says (no query sent).
  if (/^(.+\.)?localhost\.?$/i.test(host)) return [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];
  const resolver = new dns.promises.Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: LOOKUP_TRIES });
  if (policy.dnsServers) resolver.setServers(policy.dnsServers);
  const cancel = () => resolver.cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    const none = (): string[] => [];
    const [v4, v6] = await Promise.all([resolver.resolve4(host).catch(none), resolver.resolve6(host).catch(none)]);
    return [...v4.map((address) => ({ address, family: 4 })), ...v6.map((address) => ({ address, family: 6 }))];
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
}

const blocked4 = new net.BlockList();
for (const [net4, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked4.addSubnet(net4, bits, 'ipv4');

// IPv6 ranges refused whatever they carry. ::/96 (IPv4-compatible, deprecated since RFC 4291, and
// holding :: and ::1) has no route on the Internet; 64:ff9b:1::/48 is local-use NAT64 (RFC 8215, not
// globally reachable: its translator is someone's own network); fec0::/10 is deprecated site-local
// (RFC 3879), private by design; 2001::/23 holds Teredo, benchmarking and ORCHID, none a web server.
const blocked6 = new net.BlockList();
for (const [net6, bits] of [
  ['::', 96], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['64:ff9b:1::', 48], ['100::', 64],
  ['2001::', 23], ['2001:db8::', 32], ['3fff::', 20], ['5f00::', 16],
] as const) blocked6.addSubnet(net6, bits, 'ipv6');

/** The 16 bytes of an IPv6 address (net.isIP already said it is one; a zone id is dropped). */
function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.replace(/%.*$/, '').split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []).flatMap((g) => {
    if (!g.includes('.')) return [parseInt(g, 16)];
    const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
    return [(a << 8) | b, (c << 8) | d];
  });
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

const v4 = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const zero = (b: Buffer, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);

/**
 * The IPv4 address an IPv6 form delivers to, for the forms whose packets end up at that IPv4 host:
 * IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96, SIIT), well-known NAT64
 * (64:ff9b::/96) and 6to4 (2002::/16, the address in bits 16–47). They are judged as that IPv4
 * address: refused when it is private, allowed when it is public (that is how IPv6-only networks
 * reach IPv4 servers, and the host reached is the public one named).
 */
function embeddedIpv4(b: Buffer): string | undefined {
  if (zero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(b, 12);
  if (zero(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && zero(b, 10, 12)) return v4(b, 12);
  if (b.readUInt32BE(0) === 0x0064ff9b && zero(b, 4, 12)) return v4(b, 12);
  if (b.readUInt16BE(0) === 0x2002) return v4(b, 2);
  return undefined;
}

/** True for any address a webhook must not reach by default (IPv6 forms that embed IPv4 judged as that IPv4). */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return blocked4.check(address, 'ipv4');
  if (family !== 6) return true;
  const bytes = ipv6Bytes(address);
  const embedded = embeddedIpv4(bytes);
  if (embedded !== undefined) return blocked4.check(embedded, 'ipv4');
  return blocked6.check(canonicalIpv6(bytes), 'ipv6');
}

const canonicalIpv6 = (b: Buffer) => Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');

// Said the same way whatever the host resolved to: the answer must not tell a tenant what a name
// resolves to inside our network (a resolver oracle for internal names).
const PRIVATE_TARGET = 'The host is, or resolves to, a private or reserved address.';

/**
 * A send error as a tenant may read it in the delivery log, with every IP address taken out: a
 * connection error names the address it tried ("connect ECONNREFUSED 10.1.2.3:443"), which would
 * tell the tenant what its host name resolves to from here.
 */
export function describeSendError(err: unknown): string {
  const e = err as Error & { cause?: Error };
  const message = String(e?.cause?.message ?? e?.message ?? err);
  return message.replace(/\[?[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*\]?(?::\d+)?/g, (m) => (looksLikeAddress(m) ? '[address]' : m)).slice(0, 500);
}

function looksLikeAddress(token: string): boolean {
  const t = token.replace(/^\[/, '').replace(/\](:\d+)?$/, '');
  return net.isIP(t) !== 0 || net.isIP(t.replace(/:\d+$/, '')) !== 0 || net.isIP(t.replace(/\.$/, '')) !== 0;
}

export class TargetRefused extends Error {
  constructor(readonly code: 'webhook.url_scheme' | 'webhook.url_private' | 'webhook.url_unresolvable' | 'webhook.url_invalid', message: string) {
    super(message);
  }
}

/** Checks a URL as a webhook target, resolving its host; throws TargetRefused. */
export async function checkTarget(raw: string, policy: TargetPolicy, signal?: AbortSignal): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TargetRefused('webhook.url_invalid', 'The URL is not valid.');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new TargetRefused('webhook.url_scheme', policy.allowHttp ? 'Use http or https.' : 'Use https (http is not allowed on this server).');
  }
  if (url.username || url.password) throw new TargetRefused('webhook.url_invalid', 'Credentials in the URL are not allowed.');
  if (policy.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = (await resolveHost(host, policy, signal)).map((a) => a.address);
  if (addresses.length === 0) throw new TargetRefused('webhook.url_unresolvable', `${host} does not resolve.`);
  const bad = addresses.find(isPrivateAddress);
  if (bad) throw new TargetRefused('webhook.url_private', PRIVATE_TARGET);
  return url;
}

/** A lookup for the HTTP client that refuses private addresses at connect time. */
export function guardedLookup(policy: TargetPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    const resolved = (err: Error | null, addresses: dns.LookupAddress[]) => {
      if (err) return (callback as (e: Error | null, a: unknown, f?: number) => void)(err, undefined);
      const family = (options as { family?: number }).family;
      const list = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : addresses;
      if (list.length === 0) return (callback as (e: Error, a: unknown) => void)(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }), undefined);
      const bad = policy.allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad) return (callback as (e: Error | null, a: unknown) => void)(new TargetRefused('webhook.url_private', PRIVATE_TARGET), undefined);
      if ((options as { all?: boolean }).all) return (callback as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      return (callback as (e: null, a: string, f: number) => void)(null, list[0]!.address, list[0]!.family);
    };
    // resolveHost decides the resolver (c-ares unless private targets are allowed); the socket's family is applied above.
    resolveHost(hostname, policy).then((a) => resolved(null, a), (err: Error) => resolved(err, []));
  };
}
