import { describe, expect, it } from "vitest";
import { bitsPerWeightByRole } from "./bits-per-weight.js";

describe("bitsPerWeightByRole", () => {
  it("divides bytes x 8 by weights per role, roles sorted, and the whole file over all weights", () => {
    const result = bitsPerWeightByRole(
      [
        { role: "ternary-linear", bytes: 66, weights: 256 },
        { role: "embedding", bytes: 512, weights: 256 },
        { role: "ternary-linear", bytes: 66, weights: 256 },
      ],
      2048,
    );
    expect(Object.keys(result)).toEqual(["embedding", "ternary-linear", "file"]);
    expect(result["ternary-linear"]).toBeCloseTo(2.0625, 10);
    expect(result.embedding).toBe(16);
    expect(result.file).toBeCloseTo((2048 * 8) / 768, 10);
  });

  it("has no file entry without a file size, and never divides by zero", () => {
    expect(bitsPerWeightByRole([{ role: "other", bytes: 4, weights: 0 }])).toEqual({ other: 32 });
  });
});
