// Which webhook URLs are allowed: http(s) only, no credentials, and with WEBHOOK_ALLOW_PRIVATE_URLS
// off only hosts whose every address is public (literal addresses, names, IPv4-mapped IPv6).
import assert from 'node:assert/strict';
import { checkWebhookUrl, isPublicAddress, WebhookUrlError, type UrlRefusal } from '../../webhooks/url-policy';

const resolveTo =
  (map: Record<string, string[]>) =>
  async (host: string): Promise<string[]> => {
    const found = map[host];
    if (!found) throw new Error(`ENOTFOUND ${host}`);
    return found;
  };

async function refused(url: string, code: UrlRefusal, resolve = resolveTo({})): Promise<void> {
  await assert.rejects(
    checkWebhookUrl(url, { allowPrivate: false, resolve }),
    (err: unknown) => err instanceof WebhookUrlError && err.code === code,
    `${url} should be refused with ${code}`,
  );
}

describe('webhook URL policy', () => {
  it('classifies addresses', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '172.32.0.1', '100.128.0.1'])
      assert.ok(isPublicAddress(a), `${a} is public`);
    for (const a of [
      '127.0.0.1',
      '127.255.255.254',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc00::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::7f00:1',
      'not-an-address',
    ])
      assert.ok(!isPublicAddress(a), `${a} is not public`);
  });

  it('allows public http(s) URLs and answers them normalised', async () => {
    const resolve = resolveTo({ 'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'] });
    const url = await checkWebhookUrl('HTTPS://Hooks.Example.com:8443/fps?x=1', { allowPrivate: false, resolve });
    assert.equal(url.toString(), 'https://hooks.example.com:8443/fps?x=1');
    assert.ok(await checkWebhookUrl('http://8.8.8.8/hook', { allowPrivate: false, resolve }));
  });

  it('refuses other schemes, credentials and non-URLs, whatever the private setting', async () => {
    for (const allowPrivate of [false, true]) {
      for (const [url, code] of [
        ['ftp://example.com/x', 'scheme_not_allowed'],
        ['file:///etc/passwd', 'scheme_not_allowed'],
        ['javascript:alert(1)', 'scheme_not_allowed'],
        ['https://user:pass@example.com/', 'credentials_in_url'],
        ['/relative/path', 'invalid_url'],
        ['not a url', 'invalid_url'],
      ] as const)
        await assert.rejects(
          checkWebhookUrl(url, { allowPrivate }),
          (err: unknown) => err instanceof WebhookUrlError && err.code === code,
          url,
        );
    }
  });

  it('refuses loopback and private hosts, however they are spelled, unless allowed', async () => {
    for (const url of [
      'http://127.0.0.1:3000/',
      'http://localhost/',
      'http://api.localhost:3000/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://2130706433/', // 127.0.0.1 as one number
      'http://0x7f.1/',
      'http://10.0.0.5/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd12:3456::1]/',
    ])
      await refused(url, 'private_address');
    assert.ok(await checkWebhookUrl('http://127.0.0.1:3000/', { allowPrivate: true }));
  });

  it('refuses a name that resolves to any private address, or does not resolve', async () => {
    const resolve = resolveTo({
      'internal.example.com': ['10.0.0.7'],
      'mixed.example.com': ['93.184.216.34', '192.168.0.10'],
    });
    await refused('https://internal.example.com/', 'private_address', resolve);
    await refused('https://mixed.example.com/', 'private_address', resolve);
    await refused('https://nowhere.example.com/', 'unresolvable', resolve);
  });
});
