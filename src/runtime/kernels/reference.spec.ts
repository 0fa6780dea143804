import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createReferenceKernels, exp32, quantizeActivations } from "./reference.js";

const VECTORS = fileURLToPath(new URL("../../../test/vectors/", import.meta.url));
const vector = (path: string) => new Uint8Array(readFileSync(VECTORS + path));
const codes256 = new Int8Array(vector("bitnet/ternary_256x256.i8").buffer.slice(0));
const SCALE = 53 / 1024;

/** A deterministic activation vector with a spread of magnitudes and signs. */
function activations(n: number, seed = 7): Float32Array {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    x[i] = ((s >>> 8) / 2 ** 23 - 1) * (1 + (i % 7));
  }
  return x;
}

describe("reference kernels", () => {
  it("read the upstream I2_S and TQ2_0 bytes as the codes they hold (golden vectors)", () => {
    const k = createReferenceKernels();
    const x = activations(256 * 3);
    const fromCodes = k.ternary({ kind: "codes", rows: 256, cols: 256, codes: codes256, scales: { granularity: "tensor", scale: SCALE } });
    const i2s = k.ternary({ kind: "i2_s", rows: 256, cols: 256, blockSize: 128, payload: vector("bitnet/i2s_x86_256x256.bin") });
    const arm = k.ternary({ kind: "i2_s", rows: 256, cols: 256, blockSize: 64, payload: vector("bitnet/i2s_arm_256x256.bin") });
    const tq2 = k.ternary({ kind: "tq2_0", rows: 256, cols: 256, payload: vector("tq/tq2_0_256x256.bin") });
    for (const mode of ["int8", "float"] as const) {
      const outs = [0, 1, 2, 3].map(() => new Float32Array(256 * 3));
      k.linear([fromCodes, i2s, arm, tq2], x, 3, outs, mode);
      expect(outs[1]).toEqual(outs[0]);
      expect(outs[2]).toEqual(outs[0]);
      // TQ2_0 sums one block per row here (K = 256), so the same products in the same order
      expect(outs[3]).toEqual(outs[0]);
      expect(outs[0]!.some((v) => v !== 0)).toBe(true);
    }
  });

  it("int8 mode is the exact integer product scaled back, float mode the float one", () => {
    const k = createReferenceKernels();
    const rows = 3;
    const cols = 8;
    const codes = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 7) % 3) - 1);
    const w = k.ternary({ kind: "codes", rows, cols, codes, scales: { granularity: "row", scales: Float32Array.of(0.5, 2, 0.25) } });
    const x = Float32Array.of(1, -2, 3, -4, 5, -6, 7, -127);
    const q = new Int8Array(cols);
    const s = quantizeActivations(x, q);
    expect(s).toBe(Math.fround(127 / 127));
    expect([...q]).toEqual([1, -2, 3, -4, 5, -6, 7, -127]);
    const out = new Float32Array(rows);
    k.linear([w], x, 1, [out], "int8");
    const floatOut = new Float32Array(rows);
    k.linear([w], x, 1, [floatOut], "float");
    for (let m = 0; m < rows; m++) {
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += codes[m * cols + c]! * x[c]!;
      const scale = [0.5, 2, 0.25][m]!;
      expect(out[m]).toBe(Math.fround(scale * dot));
      expect(floatOut[m]).toBe(Math.fround(scale * dot));
    }
  });

  it("float mode sums each block in two float64 lanes (even and odd offsets), then adds the lanes", () => {
    const k = createReferenceKernels();
    // in k order, (1e16 + 1) rounds back to 1e16 and the sum is 1; per lane it is (1e16 - 1e16) + (1 + 1) = 2
    const x = Float32Array.of(1e16, 1, -1e16, 1);
    const w = k.ternary({ kind: "codes", rows: 1, cols: 4, codes: Int8Array.of(1, 1, 1, 1), scales: { granularity: "tensor", scale: 1 } });
    const out = new Float32Array(1);
    k.linear([w], x, 1, [out], "float");
    expect(out[0]).toBe(2);
  });

  it("quantizes activations with round-half-even and the 1e-5 floor", () => {
    const q = new Int8Array(4);
    // amax 2: s = 63.5; 1/127 * 63.5 = 0.5 -> 0 (even), 3/127 * 63.5 = 1.5 -> 2
    const s = quantizeActivations(Float32Array.of(2, 1 / 127, 3 / 127, -2), q);
    expect(s).toBe(63.5);
    expect([...q]).toEqual([127, 0, 2, -127]);
    expect(quantizeActivations(new Float32Array(4), q)).toBe(Math.fround(127 / 1e-5));
  });

  it("rejects code 3 and non-ternary codes", () => {
    const k = createReferenceKernels();
    const payload = new Uint8Array(128 / 4 + 32);
    payload[0] = 0xc0;
    expect(() => k.ternary({ kind: "i2_s", rows: 1, cols: 128, blockSize: 128, payload })).toThrow(/code 3/);
    expect(() => k.ternary({ kind: "codes", rows: 1, cols: 2, codes: Int8Array.of(2, 0), scales: { granularity: "tensor", scale: 1 } })).toThrow(/not -1, 0 or 1/);
  });
});

describe("reference dense kernels", () => {
  it("f16 rows as float32, and an int8-rows head close to it", () => {
    const k = createReferenceKernels();
    const rows = 5;
    const cols = 64;
    const values = activations(rows * cols, 3);
    const f32 = k.dense({ kind: "f32", rows, cols, values });
    const q8 = k.dense({ kind: "f32", rows, cols, values, quantize: "int8-rows" });
    expect(q8.format).toBe("int8-rows");
    const x = activations(cols * 2, 11);
    const exact = new Float32Array(rows * 2);
    const approx = new Float32Array(rows * 2);
    k.denseLinear(f32, x, 2, exact);
    k.denseLinear(q8, x, 2, approx);
    for (let i = 0; i < exact.length; i++) {
      let dot = 0;
      const lanes = [0, 0, 0, 0];
      for (let c = 0; c < cols; c++) {
        const product = values[(i % rows) * cols + c]! * x[Math.floor(i / rows) * cols + c]!;
        dot += product;
        lanes[c % 4] = Math.fround(lanes[c % 4]! + Math.fround(product));
      }
      expect(exact[i]).toBe(Math.fround(Math.fround(lanes[0]! + lanes[2]!) + Math.fround(lanes[1]! + lanes[3]!)));
      expect(Math.abs(exact[i]! - dot)).toBeLessThan(1e-5 * cols);
      expect(Math.abs(approx[i]! - exact[i]!)).toBeLessThan(0.05 * cols);
    }
    const row = new Float32Array(cols);
    k.denseRow(f32, 2, row);
    expect(row).toEqual(values.subarray(2 * cols, 3 * cols));
  });
});

describe("reference attention", () => {
  it("exp32 is within 3 float32 ulps of e^x on [-87, 0], and 0 below", () => {
    for (let i = 0; i <= 20000; i++) {
      const x = Math.fround((-87 * i) / 20000);
      const want = Math.exp(x);
      expect(Math.abs(exp32(x) - want)).toBeLessThanOrEqual(3 * 2 ** (Math.floor(Math.log2(want)) - 23));
    }
    expect([exp32(0), exp32(-0), exp32(-87.5), exp32(-Infinity)]).toEqual([1, 1, 0, 0]);
  });

  it("is causal grouped-query softmax attention (float64 check), storing each step's keys and values", () => {
    const k = createReferenceKernels();
    const [KV, H, D, P] = [2, 4, 8, 7];
    const cache = k.attentionCache({ layers: 1, positions: P, kvHeads: KV, headDim: D });
    const q = activations(P * H * D, 1);
    const keys = activations(P * KV * D, 2);
    const values = activations(P * KV * D, 3);
    const out = new Float32Array(P * H * D);
    // 3 tokens, then 4 more: the second call attends over the first call's keys too
    k.attention(cache, 0, q, keys, values, 0, 3, H, 0.25, out);
    k.attention(cache, 0, q.subarray(3 * H * D), keys.subarray(3 * KV * D), values.subarray(3 * KV * D), 3, 4, H, 0.25, out.subarray(3 * H * D));
    for (let t = 0; t < P; t++) {
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const scores = Array.from({ length: t + 1 }, (_, j) => 0.25 * Array.from({ length: D }, (_, i) => q[(t * H + h) * D + i]! * keys[(j * KV + g) * D + i]!).reduce((a, b) => a + b));
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b);
        for (let i = 0; i < D; i++) {
          const want = e.reduce((acc, ej, j) => acc + ej * values[(j * KV + g) * D + i]!, 0) / sum;
          expect(Math.abs(out[(t * H + h) * D + i]! - want)).toBeLessThan(1e-5 * (1 + Math.abs(want)));
        }
      }
    }
  });
});
