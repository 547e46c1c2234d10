import { createHmac } from 'node:crypto';
import { classifyAddress, checkAddress, AddressRefused } from '../../src/alerts/address-guard';
import { checkThresholds, checkWebhookUrl } from '../../src/alerts/alert-input';
import { backoffMs } from '../../src/alerts/delivery-job';
import { signBody, webhookBody } from '../../src/alerts/webhook-sender';
import { projectBudgetExhaustion } from '../../src/reports/projection';
import { loadConfig } from '../../src/config';

describe('the webhook address classifier', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private (carrier-grade NAT)'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'IPv4-mapped'],
    ['::ffff:8.8.8.8', 'IPv4-mapped'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
  ])('%s is %s', (ip, kind) => expect(classifyAddress(ip)).toBe(kind));

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '172.15.255.255', '2606:4700:4700::1111', '2001:4860:4860::8888'])('%s is public', (ip) =>
    expect(classifyAddress(ip)).toBe('public'),
  );

  it('refuses a non-public address unless allowed, naming the host and the kind', () => {
    expect(() => checkAddress('hooks.example', '127.0.0.1', false)).toThrow(AddressRefused);
    expect(() => checkAddress('hooks.example', '127.0.0.1', false)).toThrow(/hooks\.example resolves to 127\.0\.0\.1, a loopback address/);
    expect(() => checkAddress('hooks.example', '127.0.0.1', true)).not.toThrow();
    expect(() => checkAddress('hooks.example', '8.8.8.8', false)).not.toThrow();
  });
});

describe('alert settings input', () => {
  it('keeps thresholds sorted', () => expect(checkThresholds([100, 50, 80])).toEqual([50, 80, 100]));
  it('allows none and the edges', () => {
    expect(checkThresholds([])).toEqual([]);
    expect(checkThresholds([1, 1000])).toEqual([1, 1000]);
  });
  it.each([
    [[0], /from 1 to 1000, got 0/],
    [[1001], /got 1001/],
    [[-5], /got -5/],
    [[50.5], /got 50.5/],
    [[50, 80, 50], /50 appears more than once/],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], /at most 10 thresholds, got 11/],
  ])('refuses %j', (v, msg) => {
    expect(() => checkThresholds(v)).toThrow(msg);
    try {
      checkThresholds(v);
    } catch (e) {
      expect((e as { code: string; extensions: { field: string } }).code).toBe('BAD_USER_INPUT');
      expect((e as { extensions: { field: string } }).extensions.field).toBe('thresholds');
    }
  });

  it('takes an https URL', () => expect(checkWebhookUrl(' https://hooks.example.com/budget ', false)).toBe('https://hooks.example.com/budget'));
  it.each([
    ['http://hooks.example.com/x', /must start with https:\/\//],
    ['ftp://hooks.example.com/x', /must start with https:\/\//],
    ['not a url', /not a URL/],
    ['https://user:pw@hooks.example.com/x', /user name or password/],
    ['https://127.0.0.1/x', /127\.0\.0\.1 is a loopback address/],
    ['https://[::1]/x', /::1 is a loopback address/],
    ['https://169.254.169.254/latest', /link-local/],
    [`https://a.example/${'x'.repeat(2001)}`, /at most 2000 characters/],
  ])('refuses %s', (url, msg) => expect(() => checkWebhookUrl(url, false)).toThrow(msg));
  it('takes a loopback literal when private addresses are allowed', () =>
    expect(checkWebhookUrl('https://127.0.0.1:8443/x', true)).toBe('https://127.0.0.1:8443/x'));
});

describe('signing and retries', () => {
  it('signs the raw body with HMAC-SHA256', () => {
    const body = webhookBody(
      {
        id: 'e1',
        tenantId: 't1',
        kind: 'THRESHOLD',
        month: '2026-11',
        thresholdPercent: 80,
        spentMicros: 8_000_000n,
        budgetMicros: 10_000_000n,
        exhaustsOn: null,
        createdAt: new Date(0),
      },
      new Date(1000),
    );
    expect(JSON.parse(body)).toMatchObject({
      id: 'e1',
      type: 'budget.threshold',
      spentUsd: '8.000000',
      budgetUsd: '10.000000',
      sentAt: '1970-01-01T00:00:01.000Z',
    });
    expect(signBody('s3cret', body)).toBe(`sha256=${createHmac('sha256', 's3cret').update(body).digest('hex')}`);
  });
  it('backs off exponentially, at most an hour', () => {
    expect([1, 2, 3, 4].map((a) => backoffMs(a, 100))).toEqual([100, 200, 400, 800]);
    expect(backoffMs(40, 10_000)).toBe(3600_000);
  });
});

describe('budget exhaustion forecast', () => {
  const monthStart = new Date('2026-11-01T00:00:00Z');
  const monthEnd = new Date('2026-12-01T00:00:00Z');
  it('projects the pace so far', () => {
    // 10 days, 5 of 10 dollars: 10 more days from the 11th.
    expect(projectBudgetExhaustion({ spentMicros: 5_000_000n, budgetMicros: 10_000_000n, monthStart, monthEnd, now: new Date('2026-11-11T00:00:00Z') })).toBe(
      '2026-11-21',
    );
  });
  it('says nothing when the budget lasts the month, is spent, or there is no pace yet', () => {
    const now = new Date('2026-11-11T00:00:00Z');
    expect(projectBudgetExhaustion({ spentMicros: 1_000_000n, budgetMicros: 10_000_000n, monthStart, monthEnd, now })).toBeNull();
    expect(projectBudgetExhaustion({ spentMicros: 10_000_000n, budgetMicros: 10_000_000n, monthStart, monthEnd, now })).toBeNull();
    expect(projectBudgetExhaustion({ spentMicros: 0n, budgetMicros: 10_000_000n, monthStart, monthEnd, now })).toBeNull();
    expect(projectBudgetExhaustion({ spentMicros: 9n, budgetMicros: 10n, monthStart, monthEnd, now: new Date('2026-11-01T00:30:00Z') })).toBeNull();
  });
});

describe('alert configuration', () => {
  it('is off for private addresses by default and refuses anything but true or false', () => {
    expect(loadConfig({}).ALERT_WEBHOOKS_ALLOW_PRIVATE).toBe(false);
    expect(loadConfig({ ALERT_WEBHOOKS_ALLOW_PRIVATE: 'true' }).ALERT_WEBHOOKS_ALLOW_PRIVATE).toBe(true);
    expect(() => loadConfig({ ALERT_WEBHOOKS_ALLOW_PRIVATE: 'yes' })).toThrow(/ALERT_WEBHOOKS_ALLOW_PRIVATE="yes": expected true or false/);
    expect(() => loadConfig({ ALERT_WEBHOOK_MAX_ATTEMPTS: '0' })).toThrow(/ALERT_WEBHOOK_MAX_ATTEMPTS/);
  });
});
