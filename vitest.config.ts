import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    // Tests never touch the network (downloads are tested against a loopback server) and never
    // write into the developer's caches.
    env: { MSE_OFFLINE: '1', MSE_CACHE_DIR: '.vitest-cache', MSE_THREADS: '1' },
    globalSetup: ['test/testing/global-setup.ts'],
  },
});
