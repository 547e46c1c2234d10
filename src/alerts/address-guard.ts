import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';

/**
 * Where a webhook may connect. Tenants choose the URL, so without this the gateway would POST into its own network
 * (metadata services, Redis, admin ports). Every address a name resolves to is classified; one that is not public
 * refuses the delivery, unless ALERT_WEBHOOKS_ALLOW_PRIVATE (development and tests).
 */
const RANGES: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6', string]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'private (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'reserved'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'reserved (benchmarking)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  // IPv4 written as IPv6 would otherwise carry any of the ranges above past this list.
  ['::ffff:0:0', 96, 'ipv6', 'IPv4-mapped'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fc00::', 7, 'ipv6', 'unique-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const lists = RANGES.map(([net, prefix, type, label]) => {
  const l = new BlockList();
  l.addSubnet(net, prefix, type);
  return { l, type, label };
});

/** 'public', or what kind of non-public address `ip` is (loopback, private, link-local, unique-local, ...). */
export function classifyAddress(ip: string): string {
  const v = isIP(ip);
  if (v === 0) throw new Error(`not an IP address: ${ip}`);
  const type = v === 4 ? 'ipv4' : 'ipv6';
  // Only ranges of the address's own family: a BlockList also matches IPv4 against IPv6 ranges (::ffff:0:0/96).
  return lists.find((r) => r.type === type && r.l.check(ip, type))?.label ?? 'public';
}

export class AddressRefused extends Error {
  override readonly name = 'AddressRefused';
}

/** Throws AddressRefused unless `ip` is public (or private ones are allowed). */
export function checkAddress(host: string, ip: string, allowPrivate: boolean): void {
  const kind = classifyAddress(ip);
  if (kind !== 'public' && !allowPrivate) throw new AddressRefused(`${host} resolves to ${ip}, a ${kind} address: webhooks go to public addresses only`);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A dns.lookup for the webhook's sockets: it resolves once, checks every address, and hands the socket exactly the
 * addresses it checked, so a name that re-resolves to a private address after the check (DNS rebinding) cannot slip
 * through: there is no second resolution.
 */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: { family?: number | string; all?: boolean }, callback: LookupCallback): void => {
    const family = options.family === 'IPv6' ? 6 : options.family === 'IPv4' ? 4 : typeof options.family === 'number' ? options.family : 0;
    dnsLookup(hostname, { all: true, family }, (err, addresses) => {
      if (err) return callback(err, []);
      try {
        for (const a of addresses) checkAddress(hostname, a.address, allowPrivate);
      } catch (e) {
        return callback(e as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
