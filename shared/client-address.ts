// Who the client is, for per-address limits: the peer address, or, when the
// peer is a configured trusted proxy (server.trusted_proxies), the address
// its X-Forwarded-For names. Used by the shards (upgrade) and the gateway.

import { BlockList, isIP } from 'node:net';

/** uWS writes an IPv4 peer of a dual-stack socket as ::ffff:a.b.c.d in full hex. */
const MAPPED = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/** IPv4-mapped IPv6 as plain IPv4, so one client has one key whichever socket it came through. */
export function normalizeAddress(addr: string): string {
  const m = MAPPED.exec(addr);
  if (m !== null) {
    const hi = parseInt(m[1]!, 16);
    const lo = parseInt(m[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

/** An IP address or CIDR range as [address, prefix length, family], or null. */
export function parseCidr(s: string): [string, number, 'ipv4' | 'ipv6'] | null {
  const [addr = '', bits] = s.split('/');
  const family = isIP(addr);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  return prefix >= 0 && prefix <= max ? [addr, prefix, family === 4 ? 'ipv4' : 'ipv6'] : null;
}

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly none: boolean;

  /** server.trusted_proxies: addresses and CIDR ranges (config checked them with parseCidr). */
  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const cidr = parseCidr(e);
      if (cidr !== null) this.list.addSubnet(...cidr);
    }
    this.none = entries.length === 0;
  }

  private trusted(addr: string): boolean {
    const family = isIP(addr);
    return family !== 0 && this.list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address: `peer`, unless `peer` is trusted and sent
   * X-Forwarded-For; then the right-most address in it that is not a trusted
   * proxy (entries further left were written by the client and prove nothing).
   */
  client(peer: string, forwardedFor: string): string {
    const p = normalizeAddress(peer);
    if (this.none || forwardedFor === '' || !this.trusted(p)) return p;
    const hops = forwardedFor.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalizeAddress(hops[i]!.trim());
      if (isIP(hop) === 0) return p; // a malformed hop: nothing left of it can be trusted
      if (i === 0 || !this.trusted(hop)) return hop;
    }
    return p;
  }
}

/**
 * The key limits count an address under: an IPv4 address as it is, an IPv6
 * address by its /64 (one subscriber usually holds a whole /64, and could
 * otherwise take a fresh address per connection).
 */
export function addressKey(addr: string): string {
  if (isIP(addr) !== 6) return addr;
  const [head = '', tail] = addr.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':') + '::/64';
}
