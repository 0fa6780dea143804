/**
 * The contract between the runtime (src/runtime) and its matrix kernels. The runtime hands over
 * weights once, at load, and asks for matrix products; a backend (plain TypeScript, WebAssembly
 * SIMD128, relaxed SIMD) decides how weights are laid out in its memory and how the work is split
 * over threads. Every backend gives bit-for-bit the same results as the TypeScript reference
 * (./reference.ts), which defines the arithmetic below; tests hold each backend to it.
 *
 * Arithmetic, int8 activations (BitNet b1.58's ActQuant, per token, before every ternary linear):
 *   amax  = max_k |x[k]|                                   (float32 values)
 *   s     = f32(127 / max(amax, 1e-5))
 *   q[k]  = clamp(roundHalfEven(f32(x[k] * s)), -128, 127)
 *   isum  = sum_k t[m][k] * q[k]                           exact integers, per scale block
 *   y[m]  = f32((sum over blocks b, in order, of d_b * isum_b) / s)    the sum in float64
 * where a "block" is the whole row for a per-tensor or per-row scale, 256 weights for TQ2_0 (d_b
 * its f16 d), or G weights for group scales. Float activations (`mode: "float"`): y[m] =
 * f32(sum over blocks of d_b * fsum_b) in float64, b in order, where fsum_b = p0 + p1 and p0 (p1)
 * sums t[m][k] * x[k] in float64 over the block's even (odd) offsets k - start_b, in order.
 * Dense (float) matrices: y[r] = (l0 + l2) + (l1 + l3) where lane l_j sums f32(w[r][k] * x[k]) over
 * k = j mod 4, in order; every product and sum is rounded to float32. A dense matrix
 * loaded with `quantize: "int8-rows"` (an option for the output head, never a default) keeps
 * int8 rows w8 with scales ws[r] = f32(max_k |w[r][k]| / 127) (w8 = clamp(roundHalfEven(f32(w / ws)))),
 * takes int8 activations as above and gives y[r] = f32(ws[r] * isum / s) in float64.
 * These float orders are what SIMD lanes compute (two float64 lanes, four float32 lanes); a backend
 * may define another only if the reference adopts it too.
 *
 * Attention (causal, grouped-query), all in float32, every product and sum rounded to float32, for
 * the query of token t at position p = start + t, head h, key/value head g = floor(h / (H / KV)):
 *   d_j   = sum_i q[i] * K[j][g][i]          i in order, from +0            (j = 0 .. p)
 *   s_j   = d_j * c                          c = f32(scale)
 *   e_j   = exp32(s_j - max_j s_j)
 *   o[i]  = sum_j e_j * V[j][g][i]           j in order, from +0
 *   out[i] = o[i] / sum_j e_j                 the sum in j order, from +0
 * exp32 (reference.ts) is a float32 exp with the same operations in every backend: 0 below -87,
 * else n = nearest(x * log2 e), r = x - n * ln2 (two constants), a degree-6 polynomial in r times 2^n.
 * Each of these sums runs in one SIMD lane (lanes hold different j, or different i): sequential
 * float32 sums, no tree. Results do not depend on how many tokens a call holds.
 *
 * RMSNorm of a row x (float32 values): ss = sum_i x[i] * x[i] in float64, i in order; k = 1 /
 * sqrt(ss / width + eps); out[i] = f32((x[i] * k) * w[i]) in float64. relu2 gating: gate[i] =
 * f32((r * r) * up[i]) in float64, r = gate[i] > 0 ? gate[i] : 0.
 */

export type KernelBackend = "ts" | "wasm-simd128" | "wasm-relaxed";
export type ActivationMode = "int8" | "float";

/** How a ternary matrix's scales apply: effective weight = scale x code. */
export type ScaleSpec =
  | { readonly granularity: "tensor"; readonly scale: number }
  /** One scale per row (length rows). */
  | { readonly granularity: "row"; readonly scales: Float32Array }
  /** One scale per G consecutive weights of a row: [rows, cols / G], row-major. */
  | { readonly granularity: "group"; readonly groupSize: number; readonly scales: Float32Array };

/**
 * A ternary weight [rows = out, cols = in] as the runtime has it. I2_S and TQ2_0 payloads are used
 * as they are (the bytes a .b158 or GGUF holds: docs/layouts.md); any other source is given as
 * codes, which the backend re-lays once into a layout of its own.
 */
export type TernaryWeightSource =
  | { readonly kind: "i2_s"; readonly rows: number; readonly cols: number; readonly blockSize: 128 | 64; readonly payload: Uint8Array }
  | { readonly kind: "tq2_0"; readonly rows: number; readonly cols: number; readonly payload: Uint8Array }
  | { readonly kind: "codes"; readonly rows: number; readonly cols: number; readonly codes: Int8Array; readonly scales: ScaleSpec }
  /**
   * Ternary values by a threshold on 16-bit sign-magnitude floats (f16 or bf16 bit patterns,
   * finite): t = +-1 (the sign bit) where the 15 magnitude bits exceed `threshold`, else 0. This is
   * absmean ternarization of 16-bit latent weights (sources/semantics.ts finds the threshold).
   */
  | { readonly kind: "threshold16"; readonly rows: number; readonly cols: number; readonly bits: Uint16Array; readonly threshold: number; readonly scales: ScaleSpec };

/**
 * A payload still in its file: `read(offset, into)` fills `into` with the payload's bytes
 * [offset, offset + into.length). Backends read it in pieces straight into their own memory, so a
 * large tensor is never copied whole in JavaScript.
 */
export interface PayloadReader {
  readonly byteLength: number;
  read(offset: number, into: Uint8Array): Promise<void>;
}

/** What loadTernary() takes: a source in memory, or an I2_S / TQ2_0 payload still in its file. */
export type TernaryWeightInput =
  | TernaryWeightSource
  | { readonly kind: "i2_s"; readonly rows: number; readonly cols: number; readonly blockSize: 128 | 64; readonly payload: PayloadReader }
  | { readonly kind: "tq2_0"; readonly rows: number; readonly cols: number; readonly payload: PayloadReader };

/** A float matrix [rows, cols], little-endian element bits as stored; `quantize` keeps an int8 copy instead. */
export type DenseWeightSource = (
  | { readonly kind: "f32"; readonly rows: number; readonly cols: number; readonly values: Float32Array }
  | { readonly kind: "f16" | "bf16"; readonly rows: number; readonly cols: number; readonly bits: Uint16Array }
) & { readonly quantize?: "int8-rows" };

/** What loadDense() takes: a source in memory, or little-endian f32/f16/bf16 rows still in their file. */
export type DenseWeightInput =
  | DenseWeightSource
  | ({ readonly kind: "f32" | "f16" | "bf16"; readonly rows: number; readonly cols: number; readonly payload: PayloadReader } & { readonly quantize?: "int8-rows" });

export interface TernaryMatrix {
  readonly rows: number;
  readonly cols: number;
  /** What the backend keeps: "i2_s", "tq2_0", or its own re-laid format (documented by the backend). */
  readonly format: string;
  /** Bytes held for this matrix. */
  readonly bytes: number;
}

export interface DenseMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly format: string;
  readonly bytes: number;
}

/** Keys and values of every layer for `positions` positions, held by the backend for attention(). */
export interface AttentionCache {
  readonly layers: number;
  readonly positions: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Bytes held: 2 x layers x positions x kvHeads x headDim x 4 (and padding). */
  readonly bytes: number;
}

export interface KernelContext {
  readonly backend: KernelBackend;
  /** Threads the products are split over (1 = the calling thread only). */
  readonly threads: number;
  /** Takes a ternary weight (copied into the backend's memory; the source can be dropped). */
  ternary(source: TernaryWeightSource): TernaryMatrix;
  dense(source: DenseWeightSource): DenseMatrix;
  /** ternary() for any input; a payload still in its file is read straight into the backend's memory. */
  loadTernary(input: TernaryWeightInput): Promise<TernaryMatrix>;
  /** dense() for any input, as loadTernary(). */
  loadDense(input: DenseWeightInput): Promise<DenseMatrix>;
  /**
   * outs[i][t * rows_i + m] = (weights[i] x_t)[m] for every token t < tokens, where x_t =
   * x[t * cols .. (t + 1) * cols). All weights share cols and one activation quantization.
   */
  linear(weights: readonly TernaryMatrix[], x: Float32Array, tokens: number, outs: readonly Float32Array[], mode: ActivationMode): void;
  /** out[t * rows + r] = (weight x_t)[r]: the output head. */
  denseLinear(weight: DenseMatrix, x: Float32Array, tokens: number, out: Float32Array): void;
  /** Row `row` as float32 (embedding lookup). */
  denseRow(weight: DenseMatrix, row: number, out: Float32Array): void;
  /** RMSNorm of `rows` rows of `width` (x and out [rows, width]; out may be x), scaled by `weight` (the arithmetic above). */
  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, width: number, eps: number, out: Float32Array): void;
  /** gate[i] = relu(gate[i])^2 * up[i] for i < n: a relu2 FFN's gating (the arithmetic above). */
  relu2Gate(gate: Float32Array, up: Float32Array, n: number): void;
  /** A KV cache for attention() (its contents are undefined until positions are stored). */
  attentionCache(shape: { readonly layers: number; readonly positions: number; readonly kvHeads: number; readonly headDim: number }): AttentionCache;
  /**
   * Causal grouped-query attention of `tokens` new tokens at positions start .. start + tokens - 1
   * of `layer`: stores their keys and values (k, v: [tokens, kvHeads x headDim]) at those
   * positions, then out[(t x heads + h) x headDim + i] for every token t and head h < heads, each
   * query (q: [tokens, heads x headDim]) over the positions 0 .. start + t (the arithmetic above).
   */
  attention(cache: AttentionCache, layer: number, q: Float32Array, k: Float32Array, v: Float32Array, start: number, tokens: number, heads: number, scale: number, out: Float32Array): void;
  /** Bytes held for all weights. */
  readonly bytes: number;
  /**
   * Forgets every matrix and attention cache (their handles become invalid), keeping the memory
   * and the threads, so that another model loads into memory already in use (b158 eval's sides).
   */
  release(): void;
  /** How the backend was chosen: features found, self-tests run, fallbacks taken (for logs and --json). */
  readonly selection?: readonly string[];
  close(): Promise<void>;
}

export interface KernelOptions {
  /** "auto" (the default): B158_KERNELS if set, else the fastest backend that passes its start-up self-test. */
  readonly backend?: KernelBackend | "auto";
  /** Threads for the WebAssembly backends, the calling thread included (default 1). */
  readonly threads?: number;
  /** false: "auto" never uses (nor enables) relaxed SIMD. B158_RELAXED_SIMD=0 does the same. */
  readonly relaxedSimd?: boolean;
}
