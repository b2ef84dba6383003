import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure logic, no build, `npm run test:unit`) and `e2e` (real sockets, real
// daemons and the built `sluice` binary, so dist/ is built once first). `npm test` runs both.
export default defineConfig({
  test: {
    testTimeout: 20000,
    hookTimeout: 30000,
    // e2e tests bind ephemeral loopback ports; files run in parallel, each with its own servers.
    pool: 'forks',
    projects: [
      // Unit files share nothing but CPU: threads start faster than processes.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], pool: 'threads' } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts', 'test/helpers/**/*.test.ts'], globalSetup: ['test/global-setup.ts'] } },
    ],
  },
});
