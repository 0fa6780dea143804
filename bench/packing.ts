import { packLayout, unpackLayout } from "../src/pack/codec.js";
import { checkEligibility, LAYOUT_IDS, type LayoutId } from "../src/pack/layouts.js";
import { AbsmeanAccumulator } from "../src/pack/ternarize.js";
import { toBf16Bits } from "../src/pack/float16.js";
import { createHash } from "node:crypto";
import { PayloadChecksum } from "../src/convert/checksum.js";
import { Arena } from "../src/pack/wasm/kernels.js";
import type { BenchSection } from "./types.js";

/** The 2B-4T MLP shapes ([out, in]): gate/up and down. */
const SHAPES: readonly [number, number][] = [
  [6912, 2560],
  [2560, 6912],
];

/** Targets on one core of the 2-core reference machine, weights per second (issue #3). */
export const TARGETS: Record<"ternarize_bf16" | LayoutId, number> = {
  ternarize_bf16: 500e6,
  i2_s: 1e9,
  tq2_0: 1e9,
  tl1: 300e6,
  tl2: 300e6,
  tq1_0: 300e6,
  q2_0: 1e9,
};

/** Best of `runs` timings, in seconds: the least disturbed run. */
function best(runs: number, work: () => void): number {
  let fastest = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    work();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return fastest;
}

function latentBf16(n: number): Uint8Array {
  const bits = new Uint16Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    bits[i] = toBf16Bits(((s >>> 8) / 2 ** 24 - 0.5) * 0.08);
  }
  return new Uint8Array(bits.buffer);
}

export const packing: BenchSection = {
  name: "packing",
  description: "single-thread weights per second on the 2B-4T MLP shapes (best of 3); verify_*: bytes per second of the hash validation checks a direct-written payload with, and the sha256 it replaced (best of 5)",
  async run() {
    const rows: Record<string, unknown>[] = [];
    for (const [M, K] of SHAPES) {
      const n = M * K;
      const bf16 = latentBf16(n);
      const CHUNK = 4 * 1024 * 1024;
      let codes = new Int8Array(n);
      const ternarizeSeconds = best(3, () => {
        const accumulator = new AbsmeanAccumulator("BF16");
        for (let o = 0; o < bf16.length; o += CHUNK) accumulator.add(bf16.subarray(o, o + CHUNK));
        const coder = accumulator.coder();
        let written = 0;
        for (let o = 0; o < bf16.length; o += CHUNK) written += coder.encode(bf16.subarray(o, o + CHUNK), codes, written);
      });
      rows.push({ shape: `${M}x${K}`, step: "ternarize_bf16", seconds: ternarizeSeconds, weightsPerSecond: n / ternarizeSeconds, target: TARGETS.ternarize_bf16 });
      for (const layout of LAYOUT_IDS) {
        const fit = checkEligibility(layout, [M, K]);
        if (!fit.eligible) continue;
        const seconds = best(3, () => void packLayout(fit.params, codes, [M, K], 0.05));
        rows.push({ shape: `${M}x${K}`, step: `pack_${layout}`, seconds, weightsPerSecond: n / seconds, target: TARGETS[layout] });
        // convert decodes every payload it packs to check it: no target of its own, but part of each conversion
        const payload = packLayout(fit.params, codes, [M, K], 0.05);
        const unpackSeconds = best(3, () => void unpackLayout(fit.params, payload, [M, K]));
        rows.push({ shape: `${M}x${K}`, step: `unpack_${layout}`, seconds: unpackSeconds, weightsPerSecond: n / unpackSeconds });
      }
      codes = new Int8Array(0);
    }
    // how a direct-written payload is verified (checksum.ts): XXH64 in the kernels' memory, against the sha256 it replaced
    const arena = Arena.create();
    const [payload] = arena.carve(64 * 1024 * 1024);
    for (let i = 0; i < payload!.length; i++) payload![i] = Math.imul(i, 2654435761) >>> 24;
    const bytes = payload!.byteLength;
    const verify = { xxh64: () => void new PayloadChecksum(arena.kernels, undefined, true).update(payload!), sha256: () => void createHash("sha256").update(payload!).digest() };
    for (const [name, work] of Object.entries(verify)) {
      const seconds = best(5, work);
      rows.push({ shape: "64 MiB", step: `verify_${name}${name === "xxh64" && arena.kernels === undefined ? " (no WebAssembly module)" : ""}`, seconds, bytesPerSecond: bytes / seconds });
    }
    return rows;
  },
};
