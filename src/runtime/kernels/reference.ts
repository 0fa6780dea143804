import { B158Error } from "../../errors.js";
import { fromBf16Bits, fromF16Bits } from "../../pack/float16.js";
import type { ActivationMode, AttentionCache, DenseMatrix, DenseWeightInput, DenseWeightSource, KernelContext, PayloadReader, ScaleSpec, TernaryMatrix, TernaryWeightInput, TernaryWeightSource } from "./api.js";

/**
 * The reference backend: plain loops over one int8 code per weight, written for clarity, not
 * speed. It defines the arithmetic of api.ts; every other backend must match it bit for bit.
 * Its I2_S and TQ2_0 decoding is written here from docs/layouts.md, not taken from src/pack, so
 * a packer bug cannot cancel out between a conversion and the runtime that checks it.
 */
export interface RefTernary extends TernaryMatrix {
  readonly codes: Int8Array;
  /** Weights per scale block (cols for a per-tensor or per-row scale). */
  readonly blockSize: number;
  /** [rows, cols / blockSize] block scales. */
  readonly blockScales: Float32Array;
}

interface RefDense extends DenseMatrix {
  readonly values: Float32Array;
  /** int8-rows: the quantized rows and their scales (values then holds the dequantized rows). */
  readonly int8?: { readonly rows: Int8Array; readonly scales: Float32Array };
}

/** BitNet's ActQuant floor on max|x|. */
export const ACTIVATION_FLOOR = 1e-5;

export function createReferenceKernels(): KernelContext {
  let bytes = 0;
  return {
    backend: "ts",
    threads: 1,
    get bytes() {
      return bytes;
    },
    ternary(source) {
      const matrix = decodeTernary(source);
      bytes += matrix.bytes;
      return matrix;
    },
    dense(source) {
      const matrix = decodeDense(source);
      bytes += matrix.bytes;
      return matrix;
    },
    async loadTernary(input) {
      return this.ternary(await ternaryInMemory(input));
    },
    async loadDense(input) {
      return this.dense(await denseInMemory(input));
    },
    release() {
      bytes = 0;
    },
    linear(weights, x, tokens, outs, mode) {
      const list = weights as readonly RefTernary[];
      const cols = list[0]!.cols;
      const q = new Int8Array(cols);
      for (let t = 0; t < tokens; t++) {
        const xt = x.subarray(t * cols, (t + 1) * cols);
        const s = mode === "int8" ? quantizeActivations(xt, q) : 0;
        list.forEach((w, i) => {
          if (w.cols !== cols) throw new B158Error("E_INTERNAL", `linear: matrices of ${w.cols} and ${cols} columns share one input`);
          const out = outs[i]!.subarray(t * w.rows, (t + 1) * w.rows);
          if (mode === "int8") int8Rows(w, q, s, out);
          else floatRows(w, xt, out);
        });
      }
    },
    denseLinear(weight, x, tokens, out) {
      const { values, rows, cols, int8 } = weight as RefDense;
      if (int8 !== undefined) {
        const q = new Int8Array(cols);
        for (let t = 0; t < tokens; t++) {
          const s = quantizeActivations(x.subarray(t * cols, (t + 1) * cols), q);
          for (let r = 0; r < rows; r++) {
            let isum = 0;
            for (let k = 0; k < cols; k++) isum += int8.rows[r * cols + k]! * q[k]!;
            out[t * rows + r] = Math.fround((int8.scales[r]! * isum) / s);
          }
        }
        return;
      }
      for (let t = 0; t < tokens; t++) {
        const xt = x.subarray(t * cols, (t + 1) * cols);
        for (let r = 0; r < rows; r++) out[t * rows + r] = denseDot(values.subarray(r * cols, (r + 1) * cols), xt, cols);
      }
    },
    denseRow(weight, row, out) {
      const { values, cols } = weight as RefDense;
      out.set(values.subarray(row * cols, (row + 1) * cols));
    },
    rmsNorm(x, weight, rows, width, eps, out) {
      checkRows(x, weight, rows, width, out);
      for (let t = 0; t < rows; t++) {
        const base = t * width;
        let ss = 0;
        for (let i = 0; i < width; i++) ss += x[base + i]! * x[base + i]!;
        const k = 1 / Math.sqrt(ss / width + eps);
        for (let i = 0; i < width; i++) out[base + i] = x[base + i]! * k * weight[i]!;
      }
    },
    relu2Gate(gate, up, n) {
      checkGate(gate, up, n);
      for (let i = 0; i < n; i++) {
        const r = gate[i]! > 0 ? gate[i]! : 0;
        gate[i] = r * r * up[i]!;
      }
    },
    attentionCache(shape) {
      checkCacheShape(shape);
      const { layers, positions, kvHeads, headDim } = shape;
      const size = positions * kvHeads * headDim;
      const keys = Array.from({ length: layers }, () => new Float32Array(size));
      const values = Array.from({ length: layers }, () => new Float32Array(size));
      return { layers, positions, kvHeads, headDim, bytes: 2 * layers * size * 4, keys, values } satisfies RefCache;
    },
    attention(cache, layer, q, k, v, start, tokens, heads, scale, out) {
      const c = cache as RefCache;
      checkAttention(c, layer, q, k, v, start, tokens, heads, out);
      const { kvHeads: KV, headDim: D } = c;
      const width = KV * D;
      c.keys[layer]!.set(k.subarray(0, tokens * width), start * width);
      c.values[layer]!.set(v.subarray(0, tokens * width), start * width);
      attend(c.keys[layer]!, c.values[layer]!, KV, D, q, start, tokens, heads, scale, out);
    },
    async close() {},
  };
}

interface RefCache extends AttentionCache {
  /** Per layer, [positions, kvHeads, headDim]. */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
}

export function checkRows(x: Float32Array, weight: Float32Array, rows: number, width: number, out: Float32Array): void {
  if (!(Number.isInteger(rows) && Number.isInteger(width) && rows >= 0 && width >= 1)) throw new B158Error("E_INTERNAL", `rmsNorm: ${rows} rows of ${width} is not a shape`);
  if (x.length < rows * width || out.length < rows * width || weight.length < width) throw new B158Error("E_INTERNAL", `rmsNorm: x and out must hold ${rows * width} values, weight ${width}`);
}

export function checkGate(gate: Float32Array, up: Float32Array, n: number): void {
  if (!(Number.isInteger(n) && n >= 0 && gate.length >= n && up.length >= n)) throw new B158Error("E_INTERNAL", `relu2Gate: gate and up must hold ${n} values`);
}

/** The cache shape every backend accepts: positive integers, an even head size. */
export function checkCacheShape(shape: { layers: number; positions: number; kvHeads: number; headDim: number }): void {
  for (const [name, value] of Object.entries(shape)) {
    if (!(Number.isSafeInteger(value) && value > 0)) throw new B158Error("E_INTERNAL", `attention cache: ${name} ${value} is not a positive integer`);
  }
}

/** The arguments of attention() every backend checks the same way. */
export function checkAttention(c: AttentionCache, layer: number, q: Float32Array, k: Float32Array, v: Float32Array, start: number, tokens: number, heads: number, out: Float32Array): void {
  const { kvHeads: KV, headDim: D } = c;
  if (!(Number.isInteger(layer) && layer >= 0 && layer < c.layers)) throw new B158Error("E_INTERNAL", `attention: layer ${layer} is outside 0..${c.layers - 1}`);
  if (!(Number.isInteger(start) && Number.isInteger(tokens) && start >= 0 && tokens >= 1 && start + tokens <= c.positions)) {
    throw new B158Error("E_INTERNAL", `attention: positions ${start}..${start + tokens - 1} do not fit the cache of ${c.positions}`);
  }
  if (!(Number.isInteger(heads) && heads >= KV && heads % KV === 0)) throw new B158Error("E_INTERNAL", `attention: ${heads} heads cannot share ${KV} key/value heads`);
  if (q.length < tokens * heads * D || out.length < tokens * heads * D) throw new B158Error("E_INTERNAL", `attention: q and out must hold ${tokens * heads * D} values`);
  if (k.length < tokens * KV * D || v.length < tokens * KV * D) throw new B158Error("E_INTERNAL", `attention: k and v must hold ${tokens * KV * D} values`);
}

/**
 * Attention as api.ts defines it, over caches [positions, kvHeads, headDim] that hold positions
 * 0 .. start + tokens - 1.
 */
function attend(keys: Float32Array, values: Float32Array, KV: number, D: number, q: Float32Array, start: number, tokens: number, heads: number, scale: number, out: Float32Array): void {
  const group = heads / KV;
  const c = Math.fround(scale);
  const e = new Float32Array(start + tokens);
  for (let t = 0; t < tokens; t++) {
    const n = start + t + 1;
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const qAt = (t * heads + h) * D;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const kAt = (j * KV + g) * D;
        let d = 0;
        for (let i = 0; i < D; i++) d = Math.fround(d + Math.fround(q[qAt + i]! * keys[kAt + i]!));
        e[j] = Math.fround(d * c);
        if (e[j]! > max) max = e[j]!;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        e[j] = exp32(Math.fround(e[j]! - max));
        sum = Math.fround(sum + e[j]!);
      }
      for (let i = 0; i < D; i++) {
        let o = 0;
        for (let j = 0; j < n; j++) o = Math.fround(o + Math.fround(e[j]! * values[(j * KV + g) * D + i]!));
        out[qAt + i] = Math.fround(o / sum);
      }
    }
  }
}

/** exp32's constants (float32): ln 2 split so that n * LN2_HI is exact for |n| < 512. */
export const EXP32 = {
  min: -87,
  log2e: Math.fround(Math.LOG2E),
  ln2Hi: 0.693359375,
  ln2Lo: Math.fround(-2.1219444005469058e-4),
  /** 1/6! .. 1/2!, then 1 and 1 (Taylor: |error| < 2 ulp for |r| <= ln2 / 2). */
  poly: [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1].map((c) => Math.fround(c)),
} as const;

/**
 * e^x in float32 arithmetic (every step rounded to float32, no fused multiply-add), the same
 * operations in every backend: 0 below -87 (e^-87 < 2^-125: nothing next to softmax's e^0 = 1),
 * else n = nearest(x log2 e), r = (x - n ln2_hi) - n ln2_lo, p(r) by Horner, times 2^n.
 */
export function exp32(x: number): number {
  if (x < EXP32.min) return 0;
  const n = roundHalfEven(Math.fround(x * EXP32.log2e));
  const r = Math.fround(Math.fround(x - Math.fround(n * EXP32.ln2Hi)) - Math.fround(n * EXP32.ln2Lo));
  let p = EXP32.poly[0]!;
  for (let i = 1; i < EXP32.poly.length; i++) p = Math.fround(Math.fround(p * r) + EXP32.poly[i]!);
  return Math.fround(p * 2 ** n);
}

/** q = int8 activations of x; returns the scale s (q = round(x * s)). */
export function quantizeActivations(x: Float32Array, q: Int8Array): number {
  let amax = 0;
  for (let k = 0; k < x.length; k++) amax = Math.max(amax, Math.abs(x[k]!));
  const s = Math.fround(127 / Math.max(amax, ACTIVATION_FLOOR));
  for (let k = 0; k < x.length; k++) {
    const v = roundHalfEven(Math.fround(x[k]! * s));
    q[k] = v > 127 ? 127 : v < -128 ? -128 : v;
  }
  return s;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function int8Rows(w: RefTernary, q: Int8Array, s: number, out: Float32Array): void {
  const { codes, cols, blockSize, blockScales } = w;
  const blocks = cols / blockSize;
  for (let m = 0; m < w.rows; m++) {
    let sum = 0;
    for (let b = 0; b < blocks; b++) {
      let isum = 0;
      const base = m * cols + b * blockSize;
      for (let k = 0; k < blockSize; k++) isum += codes[base + k]! * q[b * blockSize + k]!;
      sum += blockScales[m * blocks + b]! * isum;
    }
    out[m] = Math.fround(sum / s);
  }
}

/** Float activations: per block, two float64 partial sums (even and odd offsets in the block, in order), then their sum. */
function floatRows(w: RefTernary, x: Float32Array, out: Float32Array): void {
  const { codes, cols, blockSize, blockScales } = w;
  const blocks = cols / blockSize;
  for (let m = 0; m < w.rows; m++) {
    let sum = 0;
    for (let b = 0; b < blocks; b++) {
      const lanes = [0, 0];
      const base = m * cols + b * blockSize;
      for (let k = 0; k < blockSize; k++) lanes[k & 1]! += codes[base + k]! * x[b * blockSize + k]!;
      sum += blockScales[m * blocks + b]! * (lanes[0]! + lanes[1]!);
    }
    out[m] = Math.fround(sum);
  }
}

/**
 * A dense float row times x: products rounded to float32, summed in four float32 lanes (lane
 * k mod 4, k in order), then (lane 0 + lane 2) + (lane 1 + lane 3), every step rounded to float32.
 */
export function denseDot(w: Float32Array, x: Float32Array, cols: number): number {
  const lanes = new Float32Array(4);
  for (let k = 0; k < cols; k++) lanes[k & 3] = lanes[k & 3]! + Math.fround(w[k]! * x[k]!);
  return Math.fround(Math.fround(lanes[0]! + lanes[2]!) + Math.fround(lanes[1]! + lanes[3]!));
}

/** A payload still in its file, read whole. */
export async function readWhole(reader: PayloadReader): Promise<Uint8Array> {
  const bytes = new Uint8Array(reader.byteLength);
  await reader.read(0, bytes);
  return bytes;
}

/** The input with its payload in memory. */
export async function ternaryInMemory(input: TernaryWeightInput): Promise<TernaryWeightSource> {
  if ((input.kind === "i2_s" || input.kind === "tq2_0") && !(input.payload instanceof Uint8Array)) return { ...input, payload: await readWhole(input.payload) };
  return input as TernaryWeightSource;
}

export async function denseInMemory(input: DenseWeightInput): Promise<DenseWeightSource> {
  if (!("payload" in input)) return input;
  const bytes = await readWhole(input.payload);
  const base = { rows: input.rows, cols: input.cols, ...(input.quantize === undefined ? {} : { quantize: input.quantize }) };
  if (input.kind === "f32") return { ...base, kind: "f32", values: new Float32Array(bytes.buffer, 0, bytes.byteLength >> 2) };
  return { ...base, kind: input.kind, bits: new Uint16Array(bytes.buffer, 0, bytes.byteLength >> 1) };
}

/** The code of every 16-bit pattern under a threshold16 source's rule (the sign bit gives -1). */
export function thresholdCode(bits: number, threshold: number): number {
  return (bits & 0x7fff) > threshold ? (bits & 0x8000 ? -1 : 1) : 0;
}

/** One int8 code per weight and its block scales: the reference's reading of any source. */
export function decodeTernary(source: TernaryWeightSource): RefTernary {
  const { rows, cols } = source;
  const codes = new Int8Array(rows * cols);
  switch (source.kind) {
    case "i2_s": {
      // block of B elements = B/4 bytes; byte g holds elements g, g+B/4, g+B/2, g+3B/4 at bits 7:6 .. 1:0
      const B = source.blockSize;
      const quarter = B / 4;
      for (let i = 0; i < codes.length; i++) {
        const j = i % B;
        const byte = source.payload[(i - j) / 4 + (j % quarter)]!;
        codes[i] = ternaryOf((byte >> (6 - 2 * Math.floor(j / quarter))) & 3, i);
      }
      const tail = new DataView(source.payload.buffer, source.payload.byteOffset + codes.length / 4, 4);
      return matrix(source, codes, cols, new Float32Array(rows).fill(tail.getFloat32(0, true)), "i2_s");
    }
    case "tq2_0": {
      // 66-byte blocks of 256 along a row: qs[64] then f16 d; element e at byte (e>>7)*32 + (e&31), bits 2*((e>>5)&3)
      const blocks = cols / 256;
      const scales = new Float32Array(rows * blocks);
      for (let m = 0; m < rows; m++) {
        for (let b = 0; b < blocks; b++) {
          const at = (m * blocks + b) * 66;
          for (let e = 0; e < 256; e++) {
            const byte = source.payload[at + (e >> 7) * 32 + (e & 31)]!;
            codes[m * cols + b * 256 + e] = ternaryOf((byte >> (2 * ((e >> 5) & 3))) & 3, m * cols + b * 256 + e);
          }
          scales[m * blocks + b] = fromF16Bits(source.payload[at + 64]! | (source.payload[at + 65]! << 8));
        }
      }
      return matrix(source, codes, 256, scales, "tq2_0");
    }
    case "threshold16": {
      if (source.bits.length < codes.length) throw new B158Error("E_PAYLOAD_SIZE", `threshold16 bits for [${rows}, ${cols}] hold ${source.bits.length} values; expected ${codes.length}`);
      for (let i = 0; i < codes.length; i++) codes[i] = thresholdCode(source.bits[i]!, source.threshold);
      const { blockSize, scales } = blockScalesOf(source.scales, rows, cols);
      return matrix(source, codes, blockSize, scales, "int8-codes");
    }
    case "codes": {
      for (let i = 0; i < codes.length; i++) {
        const c = source.codes[i]!;
        if (c !== -1 && c !== 0 && c !== 1) throw new B158Error("E_NOT_TERNARY", `weight element ${i} is ${c}, not -1, 0 or 1`);
        codes[i] = c;
      }
      const { blockSize, scales } = blockScalesOf(source.scales, rows, cols);
      return matrix(source, codes, blockSize, scales, "int8-codes");
    }
  }
}

function ternaryOf(code: number, index: number): number {
  if (code === 3) throw new B158Error("E_PACKED_CODE", `weight element ${index} holds the unused 2-bit code 3`);
  return code - 1;
}

function blockScalesOf(spec: ScaleSpec, rows: number, cols: number): { blockSize: number; scales: Float32Array } {
  switch (spec.granularity) {
    case "tensor":
      return { blockSize: cols, scales: new Float32Array(rows).fill(spec.scale) };
    case "row":
      return { blockSize: cols, scales: Float32Array.from(spec.scales) };
    case "group":
      if (cols % spec.groupSize !== 0) throw new B158Error("E_INTERNAL", `group size ${spec.groupSize} does not divide ${cols} columns`);
      return { blockSize: spec.groupSize, scales: Float32Array.from(spec.scales) };
  }
}

function matrix(source: TernaryWeightSource, codes: Int8Array, blockSize: number, blockScales: Float32Array, format: string): RefTernary {
  return { rows: source.rows, cols: source.cols, format, bytes: codes.byteLength + blockScales.byteLength, codes, blockSize, blockScales };
}

function decodeDense(source: DenseWeightSource): RefDense {
  const n = source.rows * source.cols;
  let values: Float32Array;
  if (source.kind === "f32") values = Float32Array.from(source.values.subarray(0, n));
  else {
    const decode = source.kind === "f16" ? fromF16Bits : fromBf16Bits;
    values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = decode(source.bits[i]!);
  }
  if (source.quantize !== "int8-rows") return { rows: source.rows, cols: source.cols, format: "f32", bytes: values.byteLength, values };
  const { rows: R, cols: C } = source;
  const int8 = { rows: new Int8Array(n), scales: new Float32Array(R) };
  for (let r = 0; r < R; r++) {
    let amax = 0;
    for (let k = 0; k < C; k++) amax = Math.max(amax, Math.abs(values[r * C + k]!));
    const ws = Math.fround(amax / 127);
    int8.scales[r] = ws;
    for (let k = 0; k < C; k++) {
      const v = ws === 0 ? 0 : roundHalfEven(Math.fround(values[r * C + k]! / ws));
      int8.rows[r * C + k] = v > 127 ? 127 : v < -127 ? -127 : v;
      values[r * C + k] = int8.rows[r * C + k]! * ws;
    }
  }
  return { rows: R, cols: C, format: "int8-rows", bytes: int8.rows.byteLength + int8.scales.byteLength, values, int8 };
}

export type { ActivationMode };
