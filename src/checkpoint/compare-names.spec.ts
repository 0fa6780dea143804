import { describe, expect, it } from "vitest";
import { compareTensorNames } from "./open.js";

/** The tensor order rule of docs/FORMAT.md §1.9, case by case. */
describe("compareTensorNames", () => {
  const sorted = (names: string[]) => [...names].sort(compareTensorNames);

  it("compares digit runs by value and text runs as text", () => {
    expect(sorted(["model.layers.10.mlp", "model.layers.9.mlp", "model.norm.weight", "lm_head.weight", "model.layers.2.self_attn", "model.embed_tokens.weight"])).toEqual([
      "lm_head.weight",
      "model.embed_tokens.weight",
      "model.layers.2.self_attn",
      "model.layers.9.mlp",
      "model.layers.10.mlp",
      "model.norm.weight",
    ]);
  });

  it("compares digit runs of any length exactly (beyond 2^53), equal values by their text", () => {
    expect(compareTensorNames("x.90071992547409921", "x.90071992547409920")).toBeGreaterThan(0);
    expect(compareTensorNames("x.123456789012345678901234567890", "x.99")).toBeGreaterThan(0);
    expect(sorted(["a7", "a007", "a07"])).toEqual(["a007", "a07", "a7"]);
    expect(compareTensorNames("a" + "9".repeat(400), "a" + "9".repeat(399))).toBeGreaterThan(0);
    // both overflow a double to Infinity: 10^400 is still the larger
    expect(compareTensorNames("a1" + "0".repeat(400), "a" + "9".repeat(400))).toBeGreaterThan(0);
  });

  it("a run that is a prefix of the other comes first; fewer runs first when all compared are equal", () => {
    expect(sorted(["ab", "a1", "a", "a1b", "a1."])).toEqual(["a", "a1", "a1.", "a1b", "ab"]);
    // text runs compare whole: "a!" against "a" (the text run before the digits)
    expect(sorted(["a!", "a1"])).toEqual(["a1", "a!"]);
  });

  it("orders text by code point (UTF-8 byte order), not UTF-16 code unit", () => {
    // U+FF61 is one UTF-16 unit above the surrogates that encode U+1F600; by code point it is below
    expect(sorted(["w.\u{1F600}", "w.\uFF61"])).toEqual(["w.\uFF61", "w.\u{1F600}"]);
    expect(Buffer.compare(Buffer.from("w.\uFF61"), Buffer.from("w.\u{1F600}"))).toBe(-1);
  });

  it("is a strict order on distinct names", () => {
    const names = ["a", "a0", "a00", "a1", "a01", "a1b", "b", "a10", "a9", "A", "a.1.2", "a.1.10", "a.01.2"];
    for (const x of names) {
      expect(compareTensorNames(x, x)).toBe(0);
      for (const y of names) if (x !== y) expect(Math.sign(compareTensorNames(x, y))).toBe(-Math.sign(compareTensorNames(y, x)));
    }
  });
});
