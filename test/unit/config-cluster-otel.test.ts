import { ConfigError, loadConfig } from '../../src/config';
import { startTracing, tracesUrl } from '../../src/telemetry';

/** REDIS_CLUSTER_NODES and OTEL_*: parsed into what the code needs, or a ConfigError naming the variable. */

const reject = (env: NodeJS.ProcessEnv, name: string) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(new RegExp(`${name}=`));
};

test('REDIS_CLUSTER_NODES: unset means one Redis at REDIS_URL; set, a list of seed nodes', () => {
  expect(loadConfig({}).REDIS_CLUSTER_NODES).toBeUndefined();
  expect(loadConfig({ REDIS_CLUSTER_NODES: '' }).REDIS_CLUSTER_NODES).toBeUndefined();
  expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001,redis-c.internal:7002' }).REDIS_CLUSTER_NODES).toEqual([
    { host: '10.0.0.1', port: 7000 },
    { host: 'redis-b', port: 7001 },
    { host: 'redis-c.internal', port: 7002 },
  ]);
});

test.each(['redis://a:7000', 'a', 'a:', 'a:7000,', 'a:7000;b:7001', 'a:70000', 'a:0', 'a:7000,,b:7001'])('REDIS_CLUSTER_NODES=%s is refused', (v) => {
  reject({ REDIS_CLUSTER_NODES: v }, 'REDIS_CLUSTER_NODES');
});

test('OTEL_EXPORTER_OTLP_ENDPOINT: off by default; an http(s) URL when set; the service name defaults to llm-gateway', () => {
  expect(loadConfig({}).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  expect(loadConfig({}).OTEL_SERVICE_NAME).toBe('llm-gateway');
  const c = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'gw-eu' });
  expect([c.OTEL_EXPORTER_OTLP_ENDPOINT, c.OTEL_SERVICE_NAME]).toEqual(['http://collector:4318', 'gw-eu']);
  reject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  reject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  reject({ OTEL_SERVICE_NAME: '   ' }, 'OTEL_SERVICE_NAME');
});

test('tracing is off (nothing created, nothing to wrap) without an endpoint; traces go to <endpoint>/v1/traces', async () => {
  expect(startTracing({ endpoint: undefined, serviceName: 'x' })).toBeNull();
  expect(tracesUrl('http://collector:4318')).toBe('http://collector:4318/v1/traces');
  expect(tracesUrl('http://collector:4318/otlp/')).toBe('http://collector:4318/otlp/v1/traces');
});
