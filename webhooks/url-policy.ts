// Which URLs an endpoint may have: http(s), no credentials, and (unless WEBHOOK_ALLOW_PRIVATE_URLS)
// a host whose every address is public, so a merchant cannot aim our POSTs at our own network.
// Checked at registration and again before every attempt (DNS can change in between).
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

export type UrlRefusal =
  'invalid_url' | 'scheme_not_allowed' | 'credentials_in_url' | 'unresolvable' | 'private_address';

export class WebhookUrlError extends Error {
  override readonly name = 'WebhookUrlError';
  constructor(
    readonly code: UrlRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Loopback, private, link-local, shared (CGNAT), multicast, reserved and documentation ranges. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96], // NAT64: reaches IPv4 space we cannot judge here
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** `::ffff:a.b.c.d` / `::ffff:xxxx:yyyy` → `a.b.c.d`; anything else unchanged. */
function unmapIPv4(address: string): string {
  const mapped = /^::ffff:(.+)$/i.exec(address);
  if (!mapped) return address;
  const tail = mapped[1];
  if (isIP(tail) === 4) return tail;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(tail);
  if (!hex) return address;
  const [hi, lo] = [parseInt(hex[1], 16), parseInt(hex[2], 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export function isPublicAddress(address: string): boolean {
  const plain = unmapIPv4(address.replace(/^\[|\]$/g, ''));
  const family = isIP(plain);
  if (family === 0) return false;
  return !NOT_PUBLIC.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

export interface UrlPolicy {
  allowPrivate: boolean;
  /** Resolves a host name to its addresses (default: the system resolver, every address). */
  resolve?: (hostname: string) => Promise<string[]>;
}

const systemResolve = async (hostname: string) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Parses and checks a webhook URL; answers it normalised, or throws WebhookUrlError. */
export async function checkWebhookUrl(raw: string, policy: UrlPolicy): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlError('invalid_url', 'not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new WebhookUrlError('scheme_not_allowed', `only http and https URLs, not ${url.protocol.replace(/:$/, '')}`);
  if (url.username || url.password) throw new WebhookUrlError('credentials_in_url', 'credentials in the URL');
  if (policy.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost'))
    throw new WebhookUrlError('private_address', `${host} is this machine`);
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolve)(host);
    } catch {
      throw new WebhookUrlError('unresolvable', `${host} does not resolve`);
    }
    if (addresses.length === 0) throw new WebhookUrlError('unresolvable', `${host} does not resolve`);
  }
  const blocked = addresses.find((a) => !isPublicAddress(a));
  if (blocked !== undefined)
    throw new WebhookUrlError(
      'private_address',
      `${host} is${isIP(host) ? '' : ` (resolves to ${blocked})`} a loopback, private or reserved address`,
    );
  return url;
}
