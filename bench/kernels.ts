import { Worker } from "node:worker_threads";
import { packI2S } from "../src/pack/i2s.js";
import type { DenseMatrix, KernelContext, TernaryMatrix } from "../src/runtime/kernels/api.js";
import { createKernels } from "../src/runtime/kernels/index.js";
import type { BenchSection } from "./types.js";

/**
 * The runtime's matrix kernels on the 2B-4T shapes: GMAC/s (ternary or dense multiply-adds per
 * second) per kernel, backend and thread count, as the best and the median of timed repetitions
 * (each >= 0.25 s after a warm-up), and per CPU-second of the whole process (the machine is shared:
 * wall rates move with the load, CPU rates much less). "stream" sweeps 60 distinct 6912x2560
 * matrices (265 MB, from DRAM as in generation); the others repeat one matrix (cache-resident).
 * `note` gives the figures measured on this machine for the kernel designs these follow.
 */
const E = 2560;
const F = 6912;
const VOCAB = 128256;
const SHAPES: readonly [number, number][] = [
  [E, E],
  [640, E],
  [F, E],
  [E, F],
];
const STREAM_COPIES = 60;
const PROMPT = 64;
const REPS = 5;
const MIN_SECONDS = 0.25;

/** Figures of the kernel designs measured on this machine (GMAC/s; ranges of bests). */
const NOTE: Record<string, Record<number, string>> = {
  "wasm-simd128 gemv": { 1: "22.6-23.0 (2-row pmaddwd)", 2: "43.0-45.5 stream" },
  "wasm-simd128 gemm": { 1: "43.6-46.6 (pre-unpack, N=64)", 2: "~85 est." },
  "wasm-relaxed gemv": { 1: "48.3-50.0 (4-row i16x8 dot)", 2: "85.3-87.5 stream" },
  "wasm-relaxed gemm": { 1: "60.2-61.3 (N=64)", 2: "~115 est." },
  "head f16": { 1: "4.3-5.1", 2: "10.4-10.6" },
  "head int8-rows": { 1: "12.8-14.6 (simd128) / 13.0-15.5 (relaxed)", 2: "19.8-22.5 / 22.9-24.7" },
};

interface Timing {
  best: number;
  median: number;
  cpu: number;
}

/** Seconds per call: best and median over REPS repetitions, and CPU seconds per call (median). */
function time(work: () => void): Timing {
  work();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    let calls = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    do {
      work();
      calls++;
    } while (performance.now() - t0 < MIN_SECONDS * 1000);
    const used = process.cpuUsage(c0);
    wall.push((performance.now() - t0) / 1000 / calls);
    cpu.push((used.user + used.system) / 1e6 / calls);
  }
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  return { best: wall[0]!, median: wall[Math.floor(REPS / 2)]!, cpu: cpu[Math.floor(REPS / 2)]! };
}

function row(kernel: string, k: KernelContext, shape: string, tokens: number, macs: number, t: Timing, note?: string): Record<string, unknown> {
  return {
    kernel,
    backend: k.backend,
    threads: `${k.threads}T`,
    shape,
    tokens: String(tokens),
    gmacsBest: round1(macs / t.best / 1e9),
    gmacsMedian: round1(macs / t.median / 1e9),
    gmacsPerCpuS: round1(macs / t.cpu / 1e9),
    note: note ?? "",
  };
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

function activations(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
}

function ternaryCodes(n: number, seed: number): Int8Array {
  const codes = new Int8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    codes[i] = ((s >>> 16) % 3) - 1;
  }
  return codes;
}

async function ternaryRows(backend: "wasm-simd128" | "wasm-relaxed", threads: number): Promise<Record<string, unknown>[]> {
  const k = await createKernels({ backend, threads });
  const rows: Record<string, unknown>[] = [];
  try {
    for (const [M, K] of SHAPES) {
      const w = k.ternary({ kind: "i2_s", rows: M, cols: K, blockSize: 128, payload: packI2S(ternaryCodes(M * K, M + K), M, K, 0.02) });
      for (const tokens of [1, PROMPT]) {
        const x = activations(tokens * K);
        const out = new Float32Array(tokens * M);
        const t = time(() => k.linear([w], x, tokens, [out], "int8"));
        const kind = tokens === 1 ? "gemv" : "gemm";
        rows.push(row(`ternary ${kind} i2_s`, k, `${M}x${K}`, tokens, M * K * tokens, t, M === F && K === E ? NOTE[`${backend} ${kind}`]?.[threads] : undefined));
      }
    }
    // generation-like: every matrix once, from DRAM
    const copies: TernaryMatrix[] = [];
    const payload = packI2S(ternaryCodes(F * E, 7), F, E, 0.02);
    for (let i = 0; i < STREAM_COPIES; i++) copies.push(k.ternary({ kind: "i2_s", rows: F, cols: E, blockSize: 128, payload }));
    const x = activations(E);
    const out = new Float32Array(F);
    const t = time(() => {
      for (const w of copies) k.linear([w], x, 1, [out], "int8");
    });
    rows.push(row("ternary gemv i2_s stream", k, `${STREAM_COPIES}x ${F}x${E}`, 1, STREAM_COPIES * F * E, t, NOTE[`${backend} gemv`]?.[threads]));
  } finally {
    await k.close();
  }
  return rows;
}

async function headRows(backend: "wasm-simd128" | "wasm-relaxed", threads: number, bits: Uint16Array): Promise<Record<string, unknown>[]> {
  const k = await createKernels({ backend, threads });
  const rows: Record<string, unknown>[] = [];
  try {
    for (const quantize of [undefined, "int8-rows"] as const) {
      const head: DenseMatrix = k.dense({ kind: "f16", rows: VOCAB, cols: E, bits, ...(quantize === undefined ? {} : { quantize }) });
      const x = activations(E);
      const out = new Float32Array(VOCAB);
      const t = time(() => k.denseLinear(head, x, 1, out));
      const name = quantize ?? "f16";
      rows.push(row(`head ${name}`, k, `${VOCAB}x${E}`, 1, VOCAB * E, t, NOTE[`head ${name}`]?.[threads]));
    }
  } finally {
    await k.close();
  }
  return rows;
}

async function referenceRow(): Promise<Record<string, unknown>> {
  const k = await createKernels({ backend: "ts" });
  const w = k.ternary({ kind: "i2_s", rows: E, cols: E, blockSize: 128, payload: packI2S(ternaryCodes(E * E, 1), E, E, 0.02) });
  const x = activations(E);
  const out = new Float32Array(E);
  return row("ternary gemv i2_s (reference)", k, `${E}x${E}`, 1, E * E, time(() => k.linear([w], x, 1, [out], "int8")), "JS scalar ~0.7");
}

/**
 * How many cores two busy threads actually get here (CPU seconds / wall seconds over 0.5 s): on a
 * shared machine the 2-thread rows cannot scale past it.
 */
export async function coresAvailable(): Promise<number> {
  const burn = `const { parentPort } = require("node:worker_threads"); let x = 0; const t0 = Date.now(); while (Date.now() - t0 < 500) for (let i = 0; i < 1e4; i++) x += Math.sqrt(i); parentPort.postMessage(x);`;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all([0, 1].map(() => new Promise((resolve) => new Worker(burn, { eval: true }).once("message", resolve))));
  const used = process.cpuUsage(c0);
  return round1((used.user + used.system) / 1000 / (performance.now() - t0));
}

export const kernels: BenchSection = {
  name: "kernels",
  description: "runtime kernels, GMAC/s on the 2B-4T shapes: ternary GEMV (1 token) and GEMM (64 tokens) on I2_S payloads, the 128256x2560 head",
  async run() {
    const bits = new Uint16Array(VOCAB * E);
    const values = activations(4096);
    for (let i = 0; i < bits.length; i++) bits[i] = 0x2000 | (Math.abs(values[i & 4095]! * 997) & 0x1fff); // f16 in [2^-7, 2^-5)
    const rows: Record<string, unknown>[] = [await referenceRow()];
    for (const backend of ["wasm-simd128", "wasm-relaxed"] as const) {
      for (const threads of [1, 2]) {
        const cores = threads === 2 ? await coresAvailable() : undefined;
        for (const r of [...(await ternaryRows(backend, threads)), ...(await headRows(backend, threads, bits))]) rows.push(cores === undefined ? r : { ...r, coresFor2Threads: cores });
      }
    }
    return rows;
  },
};
