/** Where the integration tests find the machine's real services. Overridable for other machines. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/llm_gateway_test';
/** Redis logical database 15: tests may flush it without touching a local server's data in database 0. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
export const TEST_ADMIN_KEY = 'test-admin-key-0123456789abcdef0123456789';
/** Seeds of the Redis Cluster the suites run on when TEST_REDIS_CLUSTER=1 (global-setup starts one and sets this). */
export const TEST_REDIS_CLUSTER_NODES = process.env.TEST_REDIS_CLUSTER_NODES || undefined;
