import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.spec.ts", "test/**/*.spec.ts"],
    // Command tests spawn the built CLI; give them room on a 2-core CI machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The JSON results feed .ci/run's plain "N passed, N failed" closing line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-results.json" }]],
  },
});
