import { luaScript, runScript, type LimitsRedis } from '../../src/limits/run-script';

/** A stand-in for the two commands the runner uses, recording what it was asked. */
function fakeRedis(evalsha: (...args: unknown[]) => Promise<unknown>): { redis: LimitsRedis; calls: string[] } {
  const calls: string[] = [];
  const redis = {
    evalsha: (...args: unknown[]) => {
      calls.push(`evalsha ${String(args[0])}`);
      return evalsha(...args);
    },
    eval: (...args: unknown[]) => {
      calls.push(`eval ${JSON.stringify(args)}`);
      return Promise.resolve('from eval');
    },
  } as unknown as LimitsRedis;
  return { redis, calls };
}

describe('runScript', () => {
  const script = luaScript('s', 'return 1');

  it('names the script by the SHA1 of its text', () => {
    expect(script.sha).toBe('e0e1f9fabfc9d4800c877a703b823ac0578ff8db');
  });

  it('runs by SHA when the server has the script', async () => {
    const { redis, calls } = fakeRedis(() => Promise.resolve('from evalsha'));
    expect(await runScript(redis, script, ['k'], ['a'])).toBe('from evalsha');
    expect(calls).toEqual([`evalsha ${script.sha}`]);
  });

  it('sends the text, with the same keys and args, on NOSCRIPT', async () => {
    const { redis, calls } = fakeRedis(() => Promise.reject(new Error('NOSCRIPT No matching script. Please use EVAL.')));
    expect(await runScript(redis, script, ['k1', 'k2'], ['a'])).toBe('from eval');
    expect(calls).toEqual([`evalsha ${script.sha}`, 'eval ["return 1",2,"k1","k2","a"]']);
  });

  it('passes any other failure through, so the caller fails closed', async () => {
    const { redis, calls } = fakeRedis(() => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")));
    await expect(runScript(redis, script, [], [])).rejects.toThrow(/writeable/);
    expect(calls).toHaveLength(1);
  });
});
