import { limitKeys } from '../../src/limits/keys';

/** Redis Cluster hashes only the text between the first '{' and the next '}' of a key. */
const hashTag = (key: string): string | null => {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : null;
};

describe('limit keys', () => {
  const keys = limitKeys();

  it('tags every key of a tenant with {tenantId}', () => {
    const m = keys.month('tenant-1', '2026-11');
    const tk = keys.tenant('tenant-1');
    const all = [m.budget, m.holds, m.holdAmounts, m.swept, tk.rpm, tk.tpm, tk.inflight, ...tk.settled];
    expect(new Set(all).size).toBe(all.length);
    for (const k of all) expect(hashTag(k)).toBe('tenant-1');
    expect(m.budget).toBe('lg:{tenant-1}:v2:budget:2026-11');
    expect(tk.settled).toEqual(['lg:{tenant-1}:v2:settled:0', 'lg:{tenant-1}:v2:settled:1']);
  });

  it("an API key's windows share its tenant's slot and are its own", () => {
    const k = keys.apiKey('tenant-1', 'key-1');
    expect(k).toEqual({ rpm: 'lg:{tenant-1}:v2:key:key-1:win:rpm', tpm: 'lg:{tenant-1}:v2:key:key-1:win:tpm' });
    for (const name of Object.values(k)) expect(hashTag(name)).toBe('tenant-1');
    expect(keys.apiKey('tenant-1', 'key-2').rpm).not.toBe(k.rpm);
  });

  it.each(['', 'a:b', '{k}', 'k}'])('refuses API key id %j, which would break the slot or the hold value', (id) => {
    expect(() => keys.apiKey('tenant-1', id)).toThrow(RangeError);
  });

  it('uses the prefix given', () => {
    expect(limitKeys('gw').tenant('t').rpm).toBe('gw:{t}:v2:win:rpm');
  });

  it.each(['', 'a{b', 'a}b', '{x}'])('refuses tenant id %j, which would break the hash tag', (id) => {
    expect(() => keys.tenant(id)).toThrow(RangeError);
  });

  it.each(['2026-1', '2026-13', '2026-00', '26-11', '2026-11-01', ''])('refuses month %j', (month) => {
    expect(() => keys.month('t', month)).toThrow(RangeError);
  });

  it('refuses a prefix with braces', () => {
    expect(() => limitKeys('l{g}')).toThrow(RangeError);
  });
});
