import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20000,
    hookTimeout: 30000,
    // e2e tests bind ephemeral loopback ports; files run in parallel, each with its own servers.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
  },
});
