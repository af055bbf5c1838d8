import { defineConfig } from "vitest/config";

// End-to-end: a real `hearth serve` (HEARTH_BIN) and Debian's Chromium via playwright-core.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
