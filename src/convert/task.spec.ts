import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memorySource } from "../io/byte-source.js";
import { packLayout } from "../pack/codec.js";
import { toBf16Bits, toF16Bits } from "../pack/float16.js";
import { unpackHfPacked } from "../pack/hf-packed.js";
import { checkEligibility, type LayoutId, type LayoutParams } from "../pack/layouts.js";
import { AbsmeanAccumulator, type LatentDtype } from "../pack/ternarize.js";
import { Arena } from "../pack/wasm/kernels.js";
import { checkPacked, runTernaryTask, type TaskLimits, type TernaryTask } from "./task.js";

/**
 * A tensor task streamed through small limits (many pieces, ranges and carried-over codes), in
 * the WebAssembly arena and in plain memory: the payload, scale and check of
 * ternarizing (or unpacking) the whole tensor and packing it at once.
 */
const LAYOUTS: LayoutId[] = ["i2_s", "tq2_0", "tq1_0", "q2_0", "tl1", "tl2"];

function latentBytes(dtype: LatentDtype, n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.1;
  if (dtype === "F32") return new Uint8Array(Float32Array.from({ length: n }, next).buffer);
  const bits = dtype === "BF16" ? toBf16Bits : toF16Bits;
  return new Uint8Array(Uint16Array.from({ length: n }, () => bits(next())).buffer);
}

function task(fields: Partial<TernaryTask> & Pick<TernaryTask, "shape" | "byteLength" | "sourceDtype" | "action" | "encoding" | "chunkBytes">): TernaryTask {
  return { name: "t", path: "memory", fileOffset: 0, ...fields };
}

describe("ternary tasks through small limits", () => {
  it("latent tensors: the whole tensor's payload, scale and check, whatever the pieces, ranges, memory and reads", async () => {
    const wasm = Arena.create();
    expect(wasm.kernels).toBeDefined();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...LAYOUTS),
        fc.constantFrom<LatentDtype>("BF16", "F16", "F32"),
        fc.constantFrom(64, 128, 256, 320),
        fc.constantFrom(256, 512, 768),
        fc.record({ rangeCodes: fc.integer({ min: 1, max: 70_000 }), pieceBytes: fc.integer({ min: 1, max: 9000 }).map((n) => 16 * n) }),
        fc.integer({ min: 1, max: 40_000 }).map((n) => 4 * n),
        fc.boolean(),
        fc.integer(),
        async (layout, dtype, M, K, limits: TaskLimits, chunkBytes, inWasm, seed) => {
          const eligibility = checkEligibility(layout, [M, K]);
          fc.pre(eligibility.eligible);
          const params = (eligibility as { params: LayoutParams }).params;
          const bytes = latentBytes(dtype, M * K, seed);
          const t = task({ shape: [M, K], byteLength: bytes.byteLength, sourceDtype: dtype, action: "ternarize", encoding: { kind: "layout", params }, chunkBytes });
          const result = await runTernaryTask(t, memorySource("t", bytes), inWasm ? wasm : Arena.plain(), limits);
          // the reference: pass 1 in the task's chunks (its float sum depends on them), then whole-tensor packing
          const { codes, scale } = chunkedReference(bytes, dtype, chunkBytes);
          const whole = packLayout(params, codes, [M, K], scale);
          expect(result.scale).toBe(scale);
          expect(Buffer.from(result.payload).equals(Buffer.from(whole))).toBe(true);
          expect(result.check).toEqual(checkPacked(params, whole, codes, [M, K]));
        },
      ),
      { numRuns: 40 },
    );
  });

  it("packed sources: unpacked and packed a range at a time, the whole tensor's payload", async () => {
    const wasm = Arena.create();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...LAYOUTS), fc.constantFrom(64, 128, 256), fc.constantFrom(256, 512), fc.integer({ min: 1, max: 50_000 }), fc.boolean(), fc.integer(), async (layout, M, K, rangeCodes, inWasm, seed) => {
        const eligibility = checkEligibility(layout, [M, K]);
        fc.pre(eligibility.eligible);
        const params = (eligibility as { params: LayoutParams }).params;
        let s = seed >>> 0;
        const packed = Uint8Array.from({ length: (M / 4) * K }, () => {
          let b = 0;
          for (let i = 0; i < 4; i++) b |= (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 3) << (2 * i);
          return b;
        });
        const t = task({ shape: [M, K], byteLength: packed.byteLength, sourceDtype: "U8", action: "repack", packedShape: [M / 4, K], repackScale: 0.75, encoding: { kind: "layout", params }, chunkBytes: 1 << 20 });
        const result = await runTernaryTask(t, memorySource("t", packed), inWasm ? wasm : Arena.plain(), { rangeCodes, pieceBytes: 1 << 20 });
        const codes = unpackHfPacked(packed, M / 4, K, M);
        const whole = packLayout(params, codes, [M, K], 0.75);
        expect(Buffer.from(result.payload).equals(Buffer.from(whole))).toBe(true);
        expect(result.check).toEqual(checkPacked(params, whole, codes, [M, K]));
      }),
      { numRuns: 30 },
    );
  });

  it("a packed source with the unused code 3 is refused naming the tensor, as whole", async () => {
    const packed = new Uint8Array(64 * 256).fill(0x55);
    packed[5000] = 0x57;
    const t = task({ shape: [256, 256], byteLength: packed.byteLength, sourceDtype: "U8", action: "repack", packedShape: [64, 256], repackScale: 1, encoding: { kind: "layout", params: { layout: "tq2_0", blockSize: 256 } }, chunkBytes: 1 << 20 });
    const whole = (() => {
      try {
        unpackHfPacked(packed, 64, 256, 256, "t", "memory");
      } catch (error) {
        return error;
      }
    })();
    await expect(runTernaryTask(t, memorySource("t", packed), Arena.create())).rejects.toEqual(whole);
    await expect(runTernaryTask(t, memorySource("t", packed), Arena.plain())).rejects.toEqual(whole);
  });
});

/** ternarize() with pass 1 fed in `step`-byte chunks, as the converter feeds it. */
function chunkedReference(bytes: Uint8Array, dtype: LatentDtype, step: number): { codes: Int8Array; scale: number } {
  const accumulator = new AbsmeanAccumulator(dtype);
  for (let at = 0; at < bytes.byteLength; at += step) accumulator.add(bytes.slice(at, Math.min(bytes.byteLength, at + step)));
  const coder = accumulator.coder();
  const codes = new Int8Array(bytes.byteLength / (dtype === "F32" ? 4 : 2));
  coder.encode(bytes, codes, 0);
  return { codes, scale: coder.result().scale };
}
