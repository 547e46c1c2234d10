/** Unit tests need nothing; integration tests talk to the machine's real Postgres, Redis and the project's simulator. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // The OTLP exporter loads node:http with a dynamic import(), which jest's module VM refuses without
  // --experimental-vm-modules; transformed by swc it becomes a require(). Plain Node (npm start) needs nothing.
  transformIgnorePatterns: ['/node_modules/(?!@opentelemetry/otlp-exporter-base/)'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 30000,
  // Integration suites share one database and one Redis; running them one at a time keeps them honest and
  // keeps the 2-core machine from measuring itself.
  maxWorkers: 1,
};
