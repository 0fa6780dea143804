import { describe, expect, it } from "vitest";
import { fuzz, reproducer } from "./fuzz/fuzz.js";
import { TARGETS } from "./fuzz/targets.js";

/**
 * A short seeded mutation run over the three readers (GGUF; safetensors with config.json and the
 * shard index; .b158, also with re-signed headers and re-hashed payloads), as inspect and validate
 * use them: every input is handled, or refused with a coded B158Error, within 5 s and holding at
 * most 128 MB more when done, in a worker whose heap is capped at 512 MB. `npm run fuzz` runs long.
 */
describe("fuzz: mutated inputs to every reader", () => {
  it("are handled or refused with a code, in bounded time and memory", async () => {
    const report = await fuzz({ seed: 20261202, iterations: 50, targets: TARGETS, budgetMs: 30_000 });
    const failures = report.failures.map((f) => `${f.target} case ${f.index} (${f.steps.join("; ")}): ${f.reason}\n  ${reproducer(f)}`);
    expect(failures).toEqual([]);
    expect(report.cases).toBeGreaterThan(0);
    // the cases reach past the first checks: some inputs are accepted, and many rules are hit
    expect(report.byOutcome.ok ?? 0).toBeGreaterThan(0);
    expect(Object.keys(report.byOutcome).length).toBeGreaterThan(8);
  }, 120_000);
});
