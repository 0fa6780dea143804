import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { B158Error } from "../../errors.js";
import { toF16Bits, toBf16Bits } from "../../pack/float16.js";
import { packI2S } from "../../pack/i2s.js";
import { packTq2_0 } from "../../pack/tq.js";
import type { DenseWeightInput, DenseWeightSource, KernelContext, PayloadReader, TernaryWeightInput, TernaryWeightSource } from "./api.js";
import { createKernels, createReferenceKernels } from "./index.js";
import { WasmKernels } from "./wasm/backend.js";
import { kernelModuleBytes, relaxedSimdAvailable } from "./wasm/load.js";
import { selfTest } from "./wasm/self-test.js";

/**
 * Every WebAssembly backend against the TypeScript reference, bit for bit: random shapes, codes and
 * scales in every source format, one token (GEMV) and several (GEMM), both activation modes, one
 * thread and two (chunks made tiny so that both threads take part in every product).
 */

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const vector = (path: string) => new Uint8Array(readFileSync(`${ROOT}test/vectors/${path}`));

interface Backend {
  readonly name: string;
  readonly kernels: WasmKernels;
}
const backends: Backend[] = [];

beforeAll(async () => {
  const simd = kernelModuleBytes("simd128");
  const relaxed = kernelModuleBytes("relaxed");
  // the build makes both modules: a missing one is a failure, not a skip
  expect(simd, "dist/runtime/kernels/wasm/kernels-simd128.wasm (npm run build)").toBeDefined();
  expect(relaxed, "dist/runtime/kernels/wasm/kernels-relaxed.wasm (npm run build)").toBeDefined();
  expect((await relaxedSimdAvailable(relaxed!)).available).toBe(true);
  for (const [kind, bytes] of [["simd128", simd!], ["relaxed", relaxed!]] as const) {
    const module = new WebAssembly.Module(bytes);
    const name = kind === "relaxed" ? "wasm-relaxed" : "wasm-simd128";
    for (const threads of [1, 2]) {
      backends.push({ name: `${name} ${threads}T`, kernels: new WasmKernels(name, module, { threads, chunkMacs: 1024, parallelMinMacs: 0 }) });
    }
  }
});

afterAll(async () => {
  await Promise.all(backends.map((b) => b.kernels.close()));
});

function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** A deterministic generator of activations with a spread of magnitudes, zeros and ties. */
function activations(n: number, seed: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const r = (s >>> 8) / 2 ** 24;
    x[i] = i % 11 === 3 ? 0 : (r - 0.5) * scale * 2 ** ((s >>> 3) % 9);
  }
  return x;
}

function codesOf(n: number, seed: number): Int8Array {
  const codes = new Int8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    codes[i] = ((s >>> 16) % 3) - 1;
  }
  return codes;
}

function scalesOf(n: number, seed: number): Float32Array {
  return Float32Array.from(activations(n, seed), (v) => 0.001 + Math.abs(v));
}

type SourceKind = "i2s128" | "i2s64" | "tq2" | "tensor" | "row" | "group";

/** A ternary source of `kind` with about `size` columns (rounded to what the layout needs). */
function ternarySource(kind: SourceKind, rows: number, size: number, seed: number, groupPick = 0): TernaryWeightSource {
  const cols = kind === "i2s128" ? 128 * Math.ceil(size / 128) : kind === "i2s64" ? 64 * Math.ceil(size / 64) : kind === "tq2" ? 256 * Math.ceil(size / 256) : size;
  const codes = codesOf(rows * cols, seed);
  switch (kind) {
    case "i2s128":
    case "i2s64": {
      const blockSize = kind === "i2s128" ? 128 : 64;
      return { kind: "i2_s", rows, cols, blockSize, payload: packI2S(codes, rows, cols, scalesOf(1, seed)[0]!, blockSize) };
    }
    case "tq2":
      return { kind: "tq2_0", rows, cols, payload: packTq2_0(codes, rows, cols, scalesOf((rows * cols) / 256, seed)) };
    case "tensor":
      return { kind: "codes", rows, cols, codes, scales: { granularity: "tensor", scale: scalesOf(1, seed)[0]! } };
    case "row":
      return { kind: "codes", rows, cols, codes, scales: { granularity: "row", scales: scalesOf(rows, seed) } };
    case "group": {
      const divisors = Array.from({ length: cols }, (_, i) => i + 1).filter((g) => cols % g === 0);
      const groupSize = divisors[groupPick % divisors.length]!;
      return { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize, scales: scalesOf((rows * cols) / groupSize, seed) } };
    }
  }
}

/** A payload "in a file": read in pieces, each range checked. */
function reader(bytes: Uint8Array): PayloadReader {
  return {
    byteLength: bytes.byteLength,
    async read(offset, into) {
      expect(offset >= 0 && offset + into.byteLength <= bytes.byteLength).toBe(true);
      into.set(bytes.subarray(offset, offset + into.byteLength));
    },
  };
}

async function expectSameAsReferenceAsync(run: (k: KernelContext) => Promise<Float32Array[]>, label: string): Promise<void> {
  const want = await run(createReferenceKernels());
  for (const { name, kernels } of backends) {
    const got = await run(kernels);
    got.forEach((out, i) => expect(bits(out), `${name}: ${label}, output ${i}`).toEqual(bits(want[i]!)));
  }
}

function expectSameAsReference(run: (k: KernelContext) => Float32Array[], label: string): void {
  const want = run(createReferenceKernels());
  for (const { name, kernels } of backends) {
    const got = run(kernels);
    got.forEach((out, i) => expect(bits(out), `${name}: ${label}, output ${i}`).toEqual(bits(want[i]!)));
  }
}

describe("WebAssembly kernels = the reference, bit for bit", () => {
  it("ternary products on random shapes, layouts, scales, tokens and modes (and two matrices per call)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<SourceKind>("i2s128", "i2s64", "tq2", "tensor", "row", "group"),
        fc.integer({ min: 1, max: 21 }),
        fc.integer({ min: 1, max: 700 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom("int8", "float"),
        fc.integer({ min: 0, max: 2 ** 30 }),
        fc.integer({ min: 0, max: 40 }),
        (kind, rows, size, tokens, mode, seed, groupPick) => {
          const source = ternarySource(kind, rows, size, seed, groupPick);
          // a second matrix on the same input, with its own block geometry
          const other = ternarySource(seed % 2 === 0 ? "row" : "group", 1 + (seed % 9), source.cols, seed + 1, groupPick + 1);
          const x = activations(tokens * source.cols, seed + 2, seed % 3 === 0 ? 1e-3 : 50);
          expectSameAsReference((k) => {
            const outs = [new Float32Array(tokens * source.rows), new Float32Array(tokens * other.rows)];
            k.linear([k.ternary(source), k.ternary(other)], x, tokens, outs, mode);
            return outs;
          }, `${kind} [${source.rows}, ${source.cols}] x ${tokens} (${mode})`);
        },
      ),
      { numRuns: 40, seed: 20261202 },
    );
  });

  it("the upstream I2_S (x86 and ARM) and TQ2_0 golden payloads", () => {
    const sources: TernaryWeightSource[] = [
      { kind: "i2_s", rows: 256, cols: 256, blockSize: 128, payload: vector("bitnet/i2s_x86_256x256.bin") },
      { kind: "i2_s", rows: 256, cols: 256, blockSize: 64, payload: vector("bitnet/i2s_arm_256x256.bin") },
      { kind: "tq2_0", rows: 256, cols: 256, payload: vector("tq/tq2_0_256x256_rowscaled.bin") },
    ];
    for (const source of sources) {
      for (const tokens of [1, 5]) {
        for (const mode of ["int8", "float"] as const) {
          const x = activations(tokens * 256, tokens + 17);
          expectSameAsReference((k) => {
            const out = new Float32Array(tokens * 256);
            k.linear([k.ternary(source)], x, tokens, [out], mode);
            return [out];
          }, `${source.kind} golden, ${tokens} tokens, ${mode}`);
        }
      }
    }
  });

  it("the partial sums at their limit: all codes +1 or -1 against int8 activations of +-127", () => {
    // more than one 64-step i16 widening (relaxed GEMV) and one 31-step run of the GEMM's row pairs,
    // ragged last runs; four rows so that both halves of both pairs reach +-127 per product
    const cols = 64 * 67;
    const signs = [1, -1, -1, 1, 1];
    const codes = new Int8Array(signs.length * cols);
    signs.forEach((sign, r) => codes.fill(sign, r * cols, (r + 1) * cols));
    const source: TernaryWeightSource = { kind: "codes", rows: signs.length, cols, codes, scales: { granularity: "row", scales: new Float32Array(signs.length).fill(1) } };
    for (const value of [3, -3]) {
      const x = new Float32Array(5 * cols).fill(value);
      for (const tokens of [1, 5]) {
        expectSameAsReference((k) => {
          const out = new Float32Array(tokens * signs.length);
          k.linear([k.ternary(source)], x, tokens, [out], "int8");
          return [out];
        }, `saturating sums, x = ${value}, ${tokens} tokens`);
      }
      const out = new Float32Array(5 * signs.length);
      backends[0]!.kernels.linear([backends[0]!.kernels.ternary(source)], x, 5, [out], "int8");
      const row = signs.map((sign) => Math.fround(sign * Math.sign(value) * 127 * cols * (3 / 127)));
      expect([...out]).toEqual([0, 1, 2, 3, 4].flatMap(() => row));
    }
  });

  it("activation edge cases: NaN, infinities, zeros, -0, subnormals, ties", () => {
    const source = ternarySource("row", 5, 200, 21);
    const cases = [
      Float32Array.from({ length: 200 }, (_, i) => (i === 150 ? NaN : i / 7)),
      Float32Array.from({ length: 200 }, (_, i) => (i === 3 ? Infinity : i === 199 ? -Infinity : 1)),
      new Float32Array(200),
      Float32Array.from({ length: 200 }, (_, i) => (i % 2 ? -0 : 1e-40 * i)),
      Float32Array.from({ length: 200 }, (_, i) => (i === 0 ? 254 : (i % 5) * 2 - 3)), // s = 0.5: x * s = -1.5, -0.5, 0.5, 1.5, 2.5 (ties)
    ];
    for (const [i, x] of cases.entries()) {
      for (const mode of ["int8", "float"] as const) {
        expectSameAsReference((k) => {
          const out = new Float32Array(5);
          k.linear([k.ternary(source)], x, 1, [out], mode);
          return [out];
        }, `activation case ${i}, ${mode}`);
      }
    }
  });

  it("dense rows: f32, f16 (with subnormals, large x, Inf/NaN weights), bf16 and int8-rows, one or more tokens", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("f32", "f16", "bf16"),
        fc.boolean(),
        fc.integer({ min: 1, max: 19 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (kind, int8, rows, cols, tokens, seed) => {
          const values = activations(rows * cols, seed, seed % 4 === 0 ? 1e-6 : 1);
          if (seed % 7 === 0) values[seed % values.length] = kind === "f16" ? 1e9 : 3e38; // f16 Inf; bf16/f32 huge
          const source: DenseWeightSource =
            kind === "f32"
              ? { kind, rows, cols, values }
              : { kind, rows, cols, bits: Uint16Array.from(values, (v) => (kind === "f16" ? toF16Bits(v) : toBf16Bits(v))) };
          const withQuant: DenseWeightSource = int8 ? { ...source, quantize: "int8-rows" } : source;
          // |x| >= 2^15 makes f16 rows take the unscaled path
          const x = activations(tokens * cols, seed + 5, seed % 5 === 0 ? 4e4 : 3);
          expectSameAsReference((k) => {
            const matrix = k.dense(withQuant);
            const out = new Float32Array(tokens * rows);
            k.denseLinear(matrix, x, tokens, out);
            const row = new Float32Array(cols);
            k.denseRow(matrix, seed % rows, row);
            return [out, row];
          }, `dense ${kind}${int8 ? " int8-rows" : ""} [${rows}, ${cols}] x ${tokens}`);
        },
      ),
      { numRuns: 40, seed: 20261203 },
    );
  });

  it("f16 rows with subnormal weights of both signs, beside zeros of both signs, x prescaled or not", () => {
    const rows = 9; // two groups of four rows and a partial one
    const cols = 40; // five 8-value steps, padded to six
    const bits = new Uint16Array(rows * cols);
    for (let i = 0; i < bits.length; i++) bits[i] = toF16Bits(((i * 37) % 23) / 7 - 1.5);
    // subnormals of both signs in the first, a middle and the last step, beside zeros of both signs
    for (const [r, k, b] of [[0, 0, 0x0001], [1, 3, 0x83ff], [2, 17, 0x0200], [3, 39, 0x8001], [4, 20, 0x0000], [5, 21, 0x8000], [8, 33, 0x0155], [8, 34, 0x8155]] as const) bits[r * cols + k] = b;
    for (const big of [false, true]) {
      for (const tokens of [1, 2]) {
        const x = activations(tokens * cols, tokens + (big ? 40 : 0), big ? 4e4 : 3); // |x| >= 2^15: x is not prescaled
        expectSameAsReference((k) => {
          const matrix = k.dense({ kind: "f16", rows, cols, bits });
          const out = new Float32Array(tokens * rows);
          k.denseLinear(matrix, x, tokens, out);
          return [out];
        }, `f16 subnormals, ${tokens} tokens, ${big ? "unscaled" : "prescaled"} x`);
      }
    }
  });

  it("attention: random head sizes, groups, context lengths and steps through one cache", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(1, 2, 4),
        fc.constantFrom(2, 6, 8, 64, 128),
        fc.array(fc.integer({ min: 1, max: 19 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (kvHeads, group, headDim, steps, seed) => {
          const heads = kvHeads * group;
          const positions = steps.reduce((a, b) => a + b, 0) + (seed % 5);
          expectSameAsReference((k) => {
            const cache = k.attentionCache({ layers: 2, positions, kvHeads, headDim });
            const outs: Float32Array[] = [];
            let start = 0;
            for (const tokens of steps) {
              const q = activations(tokens * heads * headDim, seed + start, 2);
              const kv = activations(tokens * kvHeads * headDim, seed + start + 1, 2);
              const v = activations(tokens * kvHeads * headDim, seed + start + 2);
              const out = new Float32Array(tokens * heads * headDim);
              k.attention(cache, (seed + start) % 2, q, kv, v, start, tokens, heads, 1 / Math.sqrt(headDim), out);
              outs.push(out);
              start += tokens;
            }
            return outs;
          }, `attention ${heads}/${kvHeads} heads of ${headDim}, steps ${steps.join(",")}`);
        },
      ),
      { numRuns: 25, seed: 20261204 },
    );
  });

  it("RMSNorm and relu2 gating: the reference's float64 arithmetic, any width, in place or not", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 0, max: 2 ** 30 }), (rows, width, n, seed) => {
        const x = activations(rows * width, seed, seed % 3 === 0 ? 1e-3 : 40);
        const weight = activations(width, seed + 1);
        const gate = activations(n, seed + 2, 8);
        gate[seed % n] = -0;
        const up = activations(n, seed + 3);
        expectSameAsReference((k) => {
          const [inPlace, out, g] = [x.slice(), new Float32Array(rows * width), gate.slice()];
          k.rmsNorm(x, weight, rows, width, 1e-5, out);
          k.rmsNorm(inPlace, weight, rows, width, 1e-6, inPlace);
          k.relu2Gate(g, up, n);
          return [out, inPlace, g];
        }, `rmsNorm ${rows}x${width}, relu2Gate ${n}`);
      }),
      { numRuns: 40, seed: 20261206 },
    );
  });

  it("weights read from their files, and 16-bit patterns thresholded to ternary, give the same products", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<SourceKind | "threshold16">("i2s128", "i2s64", "tq2", "threshold16"),
        fc.constantFrom("f32", "f16", "bf16"),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 0, max: 2 ** 30 }),
        async (kind, denseKind, rows, size, seed) => {
          let input: TernaryWeightInput;
          if (kind === "threshold16") {
            const cols = size;
            const patterns = Uint16Array.from(codesOf(rows * cols, seed), (c, i) => ((i * 7919 + seed) & 0x7fff) | (c < 0 ? 0x8000 : 0));
            input = { kind, rows, cols, bits: patterns, threshold: seed % 0x8000, scales: seed % 2 ? { granularity: "tensor", scale: 0.5 } : { granularity: "row", scales: scalesOf(rows, seed) } };
          } else {
            const source = ternarySource(kind, rows, size, seed) as Extract<TernaryWeightSource, { kind: "i2_s" | "tq2_0" }>;
            input = { ...source, payload: reader(source.payload) };
          }
          const cols = input.cols;
          // a dense matrix with the same columns, in its file: f32/f16/bf16 rows (int8 rows from them for odd seeds)
          const values = activations(rows * cols, seed + 3);
          const bytes = denseKind === "f32" ? new Uint8Array(values.buffer) : new Uint8Array(Uint16Array.from(values, (v) => (denseKind === "f16" ? toF16Bits(v) : toBf16Bits(v))).buffer);
          const dense: DenseWeightInput = { kind: denseKind, rows, cols, payload: reader(bytes), ...(seed % 3 === 0 ? { quantize: "int8-rows" as const } : {}) };
          const x = activations(2 * cols, seed + 4);
          await expectSameAsReferenceAsync(async (k) => {
            const [matrix, head] = [await k.loadTernary(input), await k.loadDense(dense)];
            const [y, logits, row] = [new Float32Array(2 * rows), new Float32Array(2 * rows), new Float32Array(cols)];
            k.linear([matrix], x, 2, [y], "int8");
            k.denseLinear(head, x, 2, logits);
            k.denseRow(head, seed % rows, row);
            return [y, logits, row];
          }, `${kind} and ${denseKind} [${rows}, ${cols}] from readers`);
        },
      ),
      { numRuns: 30, seed: 20261205 },
    );
  });

  it("release() forgets every matrix and cache; the memory takes the next model", async () => {
    const k = new WasmKernels("wasm-simd128", new WebAssembly.Module(kernelModuleBytes("simd128")!), { threads: 1 });
    try {
      const source = ternarySource("row", 4, 256, 9);
      const first = k.ternary(source);
      const cache = k.attentionCache({ layers: 1, positions: 4, kvHeads: 1, headDim: 8 });
      const x = activations(256, 10);
      const [before, after] = [new Float32Array(4), new Float32Array(4)];
      k.linear([first], x, 1, [before], "int8");
      k.release();
      expect(k.bytes).toBe(0);
      expect(() => k.linear([first], x, 1, [after], "int8")).toThrow(/another kernel context/);
      expect(() => k.attention(cache, 0, new Float32Array(8), new Float32Array(8), new Float32Array(8), 0, 1, 1, 1, new Float32Array(8))).toThrow(/another kernel context/);
      k.linear([k.ternary(source)], x, 1, [after], "int8");
      expect(after).toEqual(before);
    } finally {
      await k.close();
    }
  });

  it("I2_S blocks that run across rows (cols not a multiple of the block) are re-laid, same results", () => {
    const codes = codesOf(2 * 192, 31);
    const source: TernaryWeightSource = { kind: "i2_s", rows: 2, cols: 192, blockSize: 128, payload: packI2S(codes, 2, 192, 0.25) };
    for (const tokens of [1, 4]) {
      const x = activations(tokens * 192, 32);
      expectSameAsReference((k) => {
        const matrix = k.ternary(source);
        expect(matrix.format).toMatch(k.backend === "ts" ? /i2_s/ : /b158-i2s64 \(i2_s re-laid\)/);
        const out = new Float32Array(tokens * 2);
        k.linear([matrix], x, tokens, [out], "int8");
        return [out];
      }, `i2_s across rows, ${tokens} tokens`);
    }
  });

  it("rejects code 3 and non-ternary codes as the reference does", () => {
    const bad = new Uint8Array(64 * 128 / 4 + 32);
    bad[100] = 0x0c;
    const tq = packTq2_0(codesOf(256, 1), 1, 256, 0.5);
    tq[40]! |= 0x30;
    const codes = codesOf(3 * 96, 2);
    codes[2 * 96 + 5] = 2;
    for (const { kernels } of backends.slice(0, 1)) {
      expect(() => kernels.ternary({ kind: "i2_s", rows: 64, cols: 128, blockSize: 128, payload: bad })).toThrow(/element 452 holds the unused 2-bit code 3/);
      expect(() => kernels.ternary({ kind: "tq2_0", rows: 1, cols: 256, payload: tq })).toThrow(/code 3/);
      expect(() => kernels.ternary({ kind: "codes", rows: 3, cols: 96, codes, scales: { granularity: "tensor", scale: 1 } })).toThrow(/weight element 197 is 2, not -1, 0 or 1/);
      expect(() => kernels.ternary({ kind: "tq2_0", rows: 2, cols: 256, payload: tq })).toThrow(expect.objectContaining({ code: "E_PAYLOAD_SIZE" }));
    }
  });

  it("keeps weights packed: about rows x cols / 4 bytes each", () => {
    const k = backends[0]!.kernels;
    const before = k.bytes;
    const [M, K] = [96, 512];
    const i2s = k.ternary(ternarySource("i2s128", M, K, 1));
    const tq2 = k.ternary(ternarySource("tq2", M, K, 2));
    const codes = k.ternary(ternarySource("row", M, K, 3));
    const padded = k.ternary(ternarySource("group", M, 480, 4, 19)); // groups of 96, stored as 128
    expect(i2s.bytes).toBe((M * K) / 4 + 4);
    expect(tq2.bytes).toBe(((M * K) / 256) * 66);
    expect(codes.bytes).toBe((M * K) / 4 + M * 4);
    expect(padded.format).toBe("b158-i2s128-padded128");
    expect(padded.bytes).toBe(M * 5 * 32 + M * 5 * 4);
    expect(k.bytes - before).toBe(i2s.bytes + tq2.bytes + codes.bytes + padded.bytes);
    const head = k.dense({ kind: "f16", rows: 100, cols: 64, bits: new Uint16Array(6400) });
    const head8 = k.dense({ kind: "f16", rows: 100, cols: 64, bits: new Uint16Array(6400), quantize: "int8-rows" });
    expect([head.format, head.bytes, head8.format, head8.bytes]).toEqual(["f16", 12800, "int8-rows", 6400 + 400]);
  });
});

describe("backend choice: relaxed SIMD only after its self-test", () => {
  it("auto picks relaxed SIMD when it passes, SIMD128 when its self-test is made to fail", async () => {
    const auto = await createKernels({ threads: 1 }, { env: {} });
    expect(auto.backend).toBe("wasm-relaxed");
    expect(auto.selection!.join("\n")).toMatch(/wasm-relaxed: self-test passed/);
    await auto.close();
    const refused = await createKernels({ threads: 1 }, { env: {}, corruptRelaxedSelfTest: true });
    expect(refused.backend).toBe("wasm-simd128");
    expect(refused.selection!.join("\n")).toMatch(/wasm-relaxed: self-test failed \(.*output 0/);
    await refused.close();
    await expect(createKernels({ backend: "wasm-relaxed" }, { env: {}, corruptRelaxedSelfTest: true })).rejects.toThrow(/wasm-relaxed kernels are not available: .*self-test failed/);
  });

  it("relaxed SIMD can be turned off by option or environment; B158_KERNELS names a backend", async () => {
    for (const [options, env] of [
      [{ relaxedSimd: false }, {}],
      [{}, { B158_RELAXED_SIMD: "0" }],
      [{}, { B158_KERNELS: "wasm-simd128" }],
    ] as const) {
      const k = await createKernels(options, { env });
      expect(k.backend).toBe("wasm-simd128");
      await k.close();
    }
    const ts = await createKernels({}, { env: { B158_KERNELS: "ts" } });
    expect(ts.backend).toBe("ts");
    await expect(createKernels({}, { env: { B158_KERNELS: "gpu" } })).rejects.toThrow(expect.objectContaining({ code: "E_USAGE" }));
  });

  it("the self-test catches a backend that is off by one bit", () => {
    const wrong = createReferenceKernels();
    const linear = wrong.linear.bind(wrong);
    const nudged: KernelContext = {
      ...wrong,
      ternary: wrong.ternary.bind(wrong),
      linear(weights, x, tokens, outs, mode) {
        linear(weights, x, tokens, outs, mode);
        const last = outs[0]!.length - 1;
        const b = new Uint32Array(outs[0]!.buffer, outs[0]!.byteOffset, outs[0]!.length);
        if (mode === "int8" && tokens > 1) b[last]! ^= 1;
      },
    };
    expect(selfTest(createReferenceKernels())).toBeUndefined();
    expect(selfTest(nudged)).toMatch(/5 token\(s\), int8/);
  });
});

describe("threads", () => {
  const source = ternarySource("i2s128", 64, 512, 9);
  const x = activations(512, 3);
  const fresh = async () => {
    const module = new WebAssembly.Module(kernelModuleBytes("simd128")!);
    return new WasmKernels("wasm-simd128", module, { threads: 2, chunkMacs: 1024, parallelMinMacs: 0 });
  };

  it("both threads take part, and products split over them equal the reference (GEMV and GEMM)", async () => {
    const big = ternarySource("tq2", 700, 2048, 11);
    const xs = activations(6 * 2048, 12);
    for (const { name, kernels } of backends.filter((b) => b.kernels.threads === 2)) {
      const before = kernels.chunksRun();
      const w = kernels.ternary(big);
      const reference = createReferenceKernels();
      const r = reference.ternary(big);
      // on a loaded machine one thread may not get a core during a round: a few more, bounded
      const bothRan = () => kernels.chunksRun().every((n, tid) => n > before[tid]!);
      for (let round = 0; round < 20 && (round === 0 || !bothRan()); round++) {
        for (const tokens of [1, 6]) {
          for (const mode of ["int8", "float"] as const) {
            const got = new Float32Array(tokens * 700);
            const want = new Float32Array(tokens * 700);
            kernels.linear([w], xs, tokens, [got], mode);
            reference.linear([r], xs, tokens, [want], mode);
            expect(bits(got), `${name} ${tokens} tokens ${mode}`).toEqual(bits(want));
          }
        }
      }
      // Which thread claims which chunk is up to the OS scheduler: on a loaded machine one thread
      // may take a whole product. Both must take part within a bounded number of products.
      const got = new Float32Array(6 * 700);
      let after = kernels.chunksRun();
      for (let i = 0; i < 200 && (after[0]! === before[0]! || after[1]! === before[1]!); i++) {
        kernels.linear([w], xs, 6, [got], "int8");
        after = kernels.chunksRun();
      }
      expect(after[1]! - before[1]!, `${name}: chunks run by the worker`).toBeGreaterThan(0);
      expect(after[0]! - before[0]!, `${name}: chunks run by the caller`).toBeGreaterThan(0);
    }
  });

  it("a kernel that traps reaches the caller as an error, and the context stays failed", async () => {
    const k = await fresh();
    const w = k.ternary(source);
    const out = new Float32Array(64);
    k.linear([w], x, 1, [out], "int8");
    k.injectFault("trap");
    expect(() => k.linear([w], x, 1, [out], "int8")).toThrow(B158Error);
    expect(() => k.linear([w], x, 1, [out], "int8")).toThrow(/cannot be used any more/);
    await k.close();
  });

  it("a worker that dies does not hang the caller", async () => {
    const k = await fresh();
    const w = k.ternary(source);
    const out = new Float32Array(64);
    k.linear([w], x, 1, [out], "int8");
    k.injectFault({ exitThread: 1 });
    let error: unknown;
    for (let i = 0; i < 200 && error === undefined; i++) {
      try {
        k.linear([w], x, 1, [out], "int8");
      } catch (e) {
        error = e;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(error).toBeInstanceOf(B158Error);
    expect((error as Error).message).toMatch(/worker 1 exited unexpectedly/);
    await k.close();
  });

  it("workers never keep the process alive, closed or not", () => {
    const index = `${ROOT}dist/runtime/kernels/index.js`;
    for (const close of [true, false]) {
      const script = `
        const { createKernels } = await import(${JSON.stringify(index)});
        const k = await createKernels({ backend: "wasm-simd128", threads: 2 });
        const w = k.ternary({ kind: "codes", rows: 512, cols: 1024, codes: new Int8Array(512 * 1024).fill(1), scales: { granularity: "tensor", scale: 1 } });
        const out = new Float32Array(512);
        k.linear([w], new Float32Array(1024).fill(1), 1, [out], "int8");
        ${close ? "await k.close();" : ""}
        console.log(k.threads, out[0]);`;
      const printed = execFileSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000, encoding: "utf8" });
      expect(printed.trim()).toBe("2 1024");
    }
  });
});
