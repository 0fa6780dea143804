import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { packLayout, unpackLayout } from "./codec.js";
import { checkEligibility, Q2_0_BLOCK_BYTES, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, type LayoutId, type LayoutParams, type Tiling } from "./layouts.js";
import { unpackHfPacked } from "./hf-packed.js";

/**
 * One rule for every layout (docs/layouts.md, "Invalid codes and payload padding"): a decoder
 * accepts exactly the code fields its packer writes, and fails on any other with E_PACKED_CODE
 * naming the file, the tensor and the byte; bytes that are not codes (scales, I2_S's tail, TL2's
 * padding) are never judged.
 */

interface Case {
  readonly layout: LayoutId;
  readonly M: number;
  readonly K: number;
  readonly params: LayoutParams;
  /** Is payload byte `i` a code byte (as opposed to a scale or padding)? */
  readonly isCode: (i: number) => boolean;
}

const TL2_TILING: Tiling = { BM: 32, BK: 96, bm: 32 };
const tl2Regions = (M: number, K: number) => {
  const K3 = Math.floor(K / TL2_TILING.BK) * TL2_TILING.BK;
  const A = (M * K3) / 6;
  const S = (M * K3) / 24;
  return { A, S, B: (M * (K - K3)) / 4 };
};

function layoutCase(layout: LayoutId, M: number, K: number): Case {
  const fit = checkEligibility(layout, [M, K], layout === "tl2" ? { tiling: TL2_TILING } : {});
  if (!fit.eligible) throw new Error(`${layout} [${M}, ${K}]: ${fit.reason}`);
  const isCode = {
    i2_s: (i: number) => i < (M * K) / 4,
    tq2_0: (i: number) => i % TQ2_0_BLOCK_BYTES < 64,
    tq1_0: (i: number) => i % TQ1_0_BLOCK_BYTES < 52,
    q2_0: (i: number) => i % Q2_0_BLOCK_BYTES >= 2,
    tl1: () => true,
    tl2: (i: number) => {
      const { A, S, B } = tl2Regions(M, K);
      return i < A + S + B;
    },
  }[layout];
  return { layout, M, K, params: fit.params, isCode };
}

const CASES: readonly Case[] = [layoutCase("i2_s", 2, 256), layoutCase("tq2_0", 2, 512), layoutCase("tq1_0", 2, 512), layoutCase("q2_0", 2, 192), layoutCase("tl1", 64, 256), layoutCase("tl2", 32, 320)];

function randomCodes(n: number, seed: number): Int8Array {
  let s = seed >>> 0;
  return Int8Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 3 - 1);
}

/** The TQ1_0 bytes its packer writes: ceil(v * 256 / 243), for five trits (qs) and for four with a zero fifth (qh). */
const TQ1_QS = new Set(Array.from({ length: 243 }, (_, v) => Math.ceil((v * 256) / 243)));
const TQ1_QH = new Set(Array.from({ length: 81 }, (_, v) => Math.ceil((3 * v * 256) / 243)));

/** A value for payload byte `i` of `c` that no packer writes, given the byte's current value. */
function invalidByte(c: Case, i: number, current: number): number {
  switch (c.layout) {
    case "i2_s":
    case "tq2_0":
    case "q2_0":
      return current | 0x03; // the low 2-bit field becomes 3
    case "tq1_0": {
      const allowed = i % TQ1_0_BLOCK_BYTES >= 48 ? TQ1_QH : TQ1_QS;
      return [...Array(256).keys()].find((b) => !allowed.has(b))!;
    }
    case "tl1":
      return 0x9f & (current | 0x90); // high nibble 9..15
    case "tl2": {
      const { A, S } = tl2Regions(c.M, c.K);
      if (i < A) return 0xe0 | (current & 15); // magnitude 14
      if (i < A + S) throw new Error("the sign region needs a zero magnitude: see the test below");
      return 0xc4; // tail pair index 12
    }
  }
}

describe("invalid codes: one rule, one error, for every layout", () => {
  it.each(CASES.map((c) => [c.layout, c] as const))("%s: a field outside the alphabet is E_PACKED_CODE naming file, tensor and byte", (_, c) => {
    const payload = packLayout(c.params, randomCodes(c.M * c.K, 7), [c.M, c.K], 0.5);
    const { A, S } = tl2Regions(c.M, c.K);
    const candidates = [...payload.keys()].filter((i) => c.isCode(i) && !(c.layout === "tl2" && i >= A && i < A + S));
    for (const i of [candidates[0]!, candidates[Math.floor(candidates.length / 2)]!, candidates.at(-1)!]) {
      const bad = payload.slice();
      bad[i] = invalidByte(c, i, bad[i]!);
      let caught: unknown;
      try {
        unpackLayout(c.params, bad, [c.M, c.K], undefined, { file: "model.b158", tensor: "blk.0.w" });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(B158Error);
      const error = caught as B158Error;
      expect(error.code).toBe("E_PACKED_CODE");
      expect(error.exitCode).toBe(3);
      expect(error.details).toEqual({ file: "model.b158", tensor: "blk.0.w", layout: c.layout, byte: i });
      expect(error.message).toMatch(new RegExp(`^model\\.b158: tensor "blk\\.0\\.w" ${c.layout} payload: byte ${i} holds `));
    }
  });

  it("tl2: a sign bit on a zero magnitude is E_PACKED_CODE at the sign byte (the packer signs only v < 0)", () => {
    const c = CASES.find((x) => x.layout === "tl2")!;
    const payload = packLayout(c.params, new Int8Array(c.M * c.K), [c.M, c.K], 1);
    const { A } = tl2Regions(c.M, c.K);
    for (const [at, bit] of [[A, 0x01], [A + 1, 0x80]] as const) {
      const bad = payload.slice();
      bad[at] = bit;
      expect(() => unpackLayout(c.params, bad, [c.M, c.K])).toThrow(expect.objectContaining({ code: "E_PACKED_CODE", details: expect.objectContaining({ byte: at }) }));
    }
  });

  it("transformers' U8 packing: the code 3 is E_PACKED_CODE naming the tensor and file", () => {
    const packed = Uint8Array.of(0x55, 0x57, 0x55, 0x55);
    expect(() => unpackHfPacked(packed, 1, 4, 4, "model.layers.0.mlp.up_proj.weight", "model.safetensors")).toThrow(
      expect.objectContaining({ code: "E_PACKED_CODE", details: expect.objectContaining({ file: "model.safetensors", tensor: "model.layers.0.mlp.up_proj.weight", byte: 1 }) }),
    );
  });

  it.each(CASES.map((c) => [c.layout, c] as const))("%s: a damaged payload decodes only when it holds exactly what the packer writes", (_, c) => {
    fc.assert(
      fc.property(fc.integer(), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 3 }), (seed, edits) => {
        const payload = packLayout(c.params, randomCodes(c.M * c.K, seed), [c.M, c.K], 0.5);
        const damaged = payload.slice();
        for (const [at, value] of edits) damaged[at % damaged.length] = value;
        let decoded: Int8Array;
        try {
          decoded = unpackLayout(c.params, damaged, [c.M, c.K]).codes;
        } catch (error) {
          expect(error).toMatchObject({ code: "E_PACKED_CODE" });
          const byte = (error as B158Error).details.byte as number;
          expect(c.isCode(byte), `byte ${byte} is a code byte`).toBe(true);
          // the damage is reported where it is, except a TL2 sign made wrong by a magnitude edited to 0
          if (c.layout !== "tl2") expect(edits.map(([at]) => at % damaged.length)).toContain(byte);
          return;
        }
        // accepted: packing what was decoded gives the same code bytes back
        const again = packLayout(c.params, decoded, [c.M, c.K], 0.5);
        for (let i = 0; i < damaged.length; i++) if (c.isCode(i) && again[i] !== damaged[i]) expect.fail(`byte ${i}: decoded as written by no packer (${damaged[i]} re-packs to ${again[i]})`);
      }),
      { numRuns: 300 },
    );
  });

  it.each(CASES.map((c) => [c.layout, c] as const))("%s: bytes that are not codes (scales, I2_S's tail, TL2's padding) are not judged", (_, c) => {
    const payload = packLayout(c.params, randomCodes(c.M * c.K, 3), [c.M, c.K], 0.5);
    const codes = unpackLayout(c.params, payload, [c.M, c.K]).codes;
    const filled = payload.slice();
    for (let i = 0; i < filled.length; i++) if (!c.isCode(i)) filled[i] = 0xff;
    expect([...unpackLayout(c.params, filled, [c.M, c.K]).codes]).toEqual([...codes]);
  });
});
