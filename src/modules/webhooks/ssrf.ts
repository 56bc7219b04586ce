// Where a webhook may be sent. https only unless the operator allows http; never to loopback,
// private, link-local, carrier-grade NAT, multicast or cloud-metadata addresses unless the operator
// allows private targets (development, tests). Checked when an endpoint is registered and again on
// every send, against the addresses the connection actually uses (no DNS-rebinding window).
import dns from 'node:dns';
import net from 'node:net';

export interface TargetPolicy {
  allowHttp: boolean;
  allowPrivate: boolean;
}

const blocked = new net.BlockList();
for (const [net4, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net4, bits, 'ipv4');
for (const [net6, bits] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['100::', 64], ['2001:db8::', 32],
] as const) blocked.addSubnet(net6, bits, 'ipv6');

/** True for any address a webhook must not reach by default (IPv4-mapped IPv6 judged as IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocked.check(mapped[1]!, 'ipv4');
  const family = net.isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class TargetRefused extends Error {
  constructor(readonly code: 'webhook.url_scheme' | 'webhook.url_private' | 'webhook.url_unresolvable' | 'webhook.url_invalid', message: string) {
    super(message);
  }
}

/** Checks a URL as a webhook target, resolving its host; throws TargetRefused. */
export async function checkTarget(raw: string, policy: TargetPolicy): Promise<URL> {
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
  const addresses = net.isIP(host) ? [host] : await dns.promises.lookup(host, { all: true }).then((a) => a.map((x) => x.address), () => []);
  if (addresses.length === 0) throw new TargetRefused('webhook.url_unresolvable', `${host} does not resolve.`);
  const bad = addresses.find(isPrivateAddress);
  if (bad) throw new TargetRefused('webhook.url_private', `${host} resolves to ${bad}, a private or reserved address.`);
  return url;
}

/** A lookup for the HTTP client that refuses private addresses at connect time. */
export function guardedLookup(policy: TargetPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return (callback as (e: Error | null, a: unknown, f?: number) => void)(err, undefined);
      const list = addresses as unknown as dns.LookupAddress[];
      const bad = policy.allowPrivate ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad) return (callback as (e: Error | null, a: unknown) => void)(new TargetRefused('webhook.url_private', `${hostname} resolves to ${bad.address}`), undefined);
      if ((options as { all?: boolean }).all) return (callback as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      return (callback as (e: null, a: string, f: number) => void)(null, list[0]!.address, list[0]!.family);
    });
  };
}
