import type { KernelContext, TernaryWeightSource } from "../api.js";
import { createReferenceKernels } from "../reference.js";

/**
 * The start-up self-test a backend must pass before "auto" uses it (relaxed SIMD: its instructions
 * are implementation-defined at the edges, and one of them is miscompiled in Node 20's V8). Small
 * products in every layout, one token (GEMV) and five (GEMM), int8 and float, including the
 * extremes of the i16 accumulation (all codes +1 or -1 against q = 127), must equal the reference
 * bit for bit. Returns undefined on success, else what differed.
 */
export function selfTest(candidate: KernelContext, corrupt = false): string | undefined {
  const reference = createReferenceKernels();
  const random = lcg(0x5eed);
  const problems: { name: string; source: TernaryWeightSource; extreme?: boolean }[] = [
    { name: "codes, groups of 128", source: codesSource(7, 384, 128, random) },
    { name: "codes, groups of 64", source: codesSource(5, 192, 64, random) },
    { name: "codes, padded groups of 96", source: codesSource(3, 192, 96, random) },
    { name: "tq2_0", source: tq2Source(6, 512, random) },
    { name: "saturating sums", source: extremeSource(2048), extreme: true },
  ];
  for (const { name, source, extreme } of problems) {
    const mine = candidate.ternary(source);
    const theirs = reference.ternary(source);
    for (const tokens of [1, 5]) {
      const x = new Float32Array(tokens * source.cols);
      for (let i = 0; i < x.length; i++) x[i] = extreme ? 1 : (random() - 0.5) * (1 + (i % 5));
      for (const mode of ["int8", "float"] as const) {
        const got = new Float32Array(tokens * source.rows);
        const want = new Float32Array(tokens * source.rows);
        candidate.linear([mine], x, tokens, [got], mode);
        reference.linear([theirs], x, tokens, [want], mode);
        if (corrupt) got[0] = -got[0]! - 1;
        const a = new Uint32Array(got.buffer);
        const b = new Uint32Array(want.buffer);
        for (let i = 0; i < a.length; i++) {
          if (a[i] !== b[i]) return `${name}, ${tokens} token(s), ${mode}: output ${i} is ${got[i]}, the reference gives ${want[i]}`;
        }
      }
    }
  }
  return undefined;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) / 2 ** 24;
  };
}

function codesSource(rows: number, cols: number, groupSize: number, random: () => number): TernaryWeightSource {
  const codes = Int8Array.from({ length: rows * cols }, () => Math.floor(random() * 3) - 1);
  const scales = Float32Array.from({ length: (rows * cols) / groupSize }, () => 0.01 + random());
  return { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize, scales } };
}

/** TQ2_0 bytes written here from the layout (66-byte blocks: element e at byte (e>>7)*32 + (e&31), bits 2*((e>>5)&3), then f16 d). */
function tq2Source(rows: number, cols: number, random: () => number): TernaryWeightSource {
  const blocks = (rows * cols) / 256;
  const payload = new Uint8Array(blocks * 66);
  for (let b = 0; b < blocks; b++) {
    for (let e = 0; e < 256; e++) payload[b * 66 + (e >> 7) * 32 + (e & 31)]! |= Math.floor(random() * 3) << (2 * ((e >> 5) & 3));
    const d = 0x2c00 + Math.floor(random() * 0x400); // f16 values in [1/16, 1/8)
    payload[b * 66 + 64] = d & 0xff;
    payload[b * 66 + 65] = d >> 8;
  }
  return { kind: "tq2_0", rows, cols, payload };
}

/** Row 0 all +1, row 1 all -1: with x = 1 every int8 activation is 127, the largest i16 sums. */
function extremeSource(cols: number): TernaryWeightSource {
  const codes = new Int8Array(2 * cols);
  codes.fill(1, 0, cols);
  codes.fill(-1, cols);
  return { kind: "codes", rows: 2, cols, codes, scales: { granularity: "row", scales: Float32Array.of(0.5, 0.25) } };
}
