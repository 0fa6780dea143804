import { describe, expect, it } from "vitest";
import { Sampler } from "./sampler.js";

const logits = Float32Array.from([1, 3, 2, 3, -1, 0.5]);

function draws(options: ConstructorParameters<typeof Sampler>[1], n = 2000, values = logits): number[] {
  const sampler = new Sampler(values.length, options);
  return Array.from({ length: n }, () => sampler.sample(values));
}

describe("Sampler", () => {
  it("greedy picks the highest logit, the lowest id on ties", () => {
    expect(new Sampler(6).sample(logits)).toBe(1);
  });

  it("the same seed gives the same tokens; another seed other tokens", () => {
    const a = draws({ temperature: 1, seed: 42 }, 50);
    expect(draws({ temperature: 1, seed: 42 }, 50)).toEqual(a);
    expect(draws({ temperature: 1, seed: 43 }, 50)).not.toEqual(a);
  });

  it("samples softmax(logits / T): frequencies within 4 standard errors of the probabilities", () => {
    const T = 0.7;
    const weights = Array.from(logits, (l) => Math.exp(l / T));
    const total = weights.reduce((a, b) => a + b, 0);
    const n = 20000;
    const counts = new Array(logits.length).fill(0);
    for (const t of draws({ temperature: T, seed: 1 }, n)) counts[t]++;
    weights.forEach((w, i) => {
      const p = w / total;
      expect(Math.abs(counts[i] / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n) + 1e-9);
    });
  });

  it("top-k keeps the k most likely; top-p the smallest set reaching p", () => {
    expect(new Set(draws({ temperature: 5, topK: 2, seed: 3 }))).toEqual(new Set([1, 3]));
    expect(new Set(draws({ temperature: 1, topK: 1, seed: 3 }))).toEqual(new Set([1]));
    // p(1) = p(3) = 0.38 at T = 1: 0.5 needs both, 0.3 only the first (lower id on ties)
    expect(new Set(draws({ temperature: 1, topP: 0.5, seed: 3 }))).toEqual(new Set([1, 3]));
    expect(new Set(draws({ temperature: 1, topP: 0.3, seed: 3 }))).toEqual(new Set([1]));
  });

  it("rejects nonsense settings", () => {
    expect(() => new Sampler(4, { temperature: -1 })).toThrow(RangeError);
    expect(() => new Sampler(4, { topP: 0 })).toThrow(RangeError);
    expect(() => new Sampler(4, { topK: 1.5 })).toThrow(RangeError);
  });
});
