import { B158Error } from "../errors.js";
import type { ActivationMode, AttentionCache, DenseMatrix, KernelContext, TernaryMatrix } from "./kernels/api.js";
import { ACTIVATION_FLOOR } from "./kernels/reference.js";
import { applyRope, inverseFrequencies, ropeTables } from "./rope.js";
import type { ModelSpec } from "./spec.js";

/**
 * The forward pass: Hugging Face semantics of the Llama core and BitNet's additions, over weights
 * the kernels hold. Per layer:
 *   h = RMSNorm(x) * attn_norm;  q, k, v = h W_q, h W_k, h W_v;  rope(q, k)
 *   a = softmax(q k^T / sqrt(headDim), causal) v     (grouped-query: head h reads kv head h / (H/KV))
 *   [a = RMSNorm(a) * attn_sub_norm]                   (BitNet)
 *   x += a W_o
 *   h = RMSNorm(x) * ffn_norm;  f = act(h W_gate) * (h W_up)    (act: SiLU, or relu2 = relu(.)^2)
 *   [f = RMSNorm(f) * ffn_sub_norm]                    (BitNet)
 *   x += f W_down
 * then logits = RMSNorm(x) * norm x head^T. Every BitNet linear quantizes its input per token to
 * int8 (ActQuant) in "int8" mode, inside the kernels. Activations are float32 between steps; norms,
 * rope and the FFN gating are computed in float64 (norms and relu2 by the kernels, with the same
 * arithmetic as plain code); attention in float32 by the kernels (api.ts), over their cache.
 *
 * Memory is fixed at construction: the KV cache holds `contextLength` positions, and scratch
 * buffers hold `maxBatch` tokens; a forward step allocates nothing.
 */
export interface Projection {
  readonly rows: number;
  readonly cols: number;
  readonly ternary?: TernaryMatrix;
  readonly dense?: DenseMatrix;
  /** The framework quantizes this linear's input (a BitNet linear). */
  readonly bitnet: boolean;
}

export interface LayerWeights {
  readonly attnNorm: Float32Array;
  readonly ffnNorm: Float32Array;
  readonly attnSubNorm?: Float32Array;
  readonly ffnSubNorm?: Float32Array;
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly o: Projection;
  readonly gate: Projection;
  readonly up: Projection;
  readonly down: Projection;
}

export interface ModelWeights {
  readonly embed: DenseMatrix;
  /** The embedding itself when the head is tied. */
  readonly head: DenseMatrix;
  readonly norm: Float32Array;
  readonly layers: readonly LayerWeights[];
}

export interface TransformerOptions {
  readonly contextLength: number;
  /** Tokens per step: bounds scratch memory (default 64, a whole typical prompt for the kernels' matrix-matrix products). */
  readonly maxBatch?: number;
  readonly activations: ActivationMode;
}

/** Projections sharing one input: ternary ones in one kernel call (one activation quantization). */
class LinearStep {
  private readonly ternaries: TernaryMatrix[];
  private readonly ternaryOuts: Float32Array[];
  private readonly denses: { matrix: DenseMatrix; out: Float32Array; quantize: boolean }[];
  private readonly quantized: Float32Array | undefined;

  constructor(
    private readonly kernels: KernelContext,
    projections: readonly Projection[],
    outs: readonly Float32Array[],
    private readonly mode: ActivationMode,
    maxBatch: number,
  ) {
    this.ternaries = [];
    this.ternaryOuts = [];
    this.denses = [];
    projections.forEach((p, i) => {
      if (p.ternary !== undefined) {
        this.ternaries.push(p.ternary);
        this.ternaryOuts.push(outs[i]!);
      } else this.denses.push({ matrix: p.dense!, out: outs[i]!, quantize: p.bitnet && mode === "int8" });
    });
    this.quantized = this.denses.some((d) => d.quantize) ? new Float32Array(maxBatch * projections[0]!.cols) : undefined;
  }

  run(x: Float32Array, tokens: number): void {
    if (this.ternaries.length > 0) this.kernels.linear(this.ternaries, x, tokens, this.ternaryOuts, this.mode);
    if (this.denses.length === 0) return;
    if (this.quantized !== undefined) fakeQuantize(x, tokens, this.denses[0]!.matrix.cols, this.quantized);
    for (const d of this.denses) this.kernels.denseLinear(d.matrix, d.quantize ? this.quantized! : x, tokens, d.out);
  }
}

/** ActQuant for a float-stored BitNet linear: each token's row as q / s, q = clamp(roundHalfEven(x * s)). */
function fakeQuantize(x: Float32Array, tokens: number, cols: number, out: Float32Array): void {
  for (let t = 0; t < tokens; t++) {
    const base = t * cols;
    let amax = 0;
    for (let k = 0; k < cols; k++) amax = Math.max(amax, Math.abs(x[base + k]!));
    const s = Math.fround(127 / Math.max(amax, ACTIVATION_FLOOR));
    for (let k = 0; k < cols; k++) {
      const v = Math.fround(x[base + k]! * s);
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1;
      out[base + k] = Math.fround((r > 127 ? 127 : r < -128 ? -128 : r) / s);
    }
  }
}

export class Transformer {
  readonly contextLength: number;
  readonly maxBatch: number;
  private positionValue = 0;
  private readonly inv: Float64Array;
  private readonly cache: AttentionCache;
  // scratch, [maxBatch, width] each
  private readonly x: Float32Array;
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly attn: Float32Array;
  private readonly proj: Float32Array;
  private readonly gate: Float32Array;
  private readonly up: Float32Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly rows: Float32Array[];
  private readonly steps: { qkv: LinearStep; o: LinearStep; gateUp: LinearStep; down: LinearStep }[];

  constructor(
    readonly spec: ModelSpec,
    private readonly weights: ModelWeights,
    private readonly kernels: KernelContext,
    options: TransformerOptions,
  ) {
    const { hiddenSize: E, intermediateSize: F, heads: H, kvHeads: KV, headDim: D } = spec;
    this.contextLength = options.contextLength;
    this.maxBatch = Math.max(1, Math.min(options.maxBatch ?? 64, options.contextLength));
    const B = this.maxBatch;
    this.inv = inverseFrequencies(spec);
    this.cache = kernels.attentionCache({ layers: weights.layers.length, positions: this.contextLength, kvHeads: KV, headDim: D });
    this.x = new Float32Array(B * E);
    this.h = new Float32Array(B * Math.max(E, H * D, F));
    this.q = new Float32Array(B * H * D);
    this.k = new Float32Array(B * KV * D);
    this.v = new Float32Array(B * KV * D);
    this.attn = new Float32Array(B * H * D);
    this.proj = new Float32Array(B * E);
    this.gate = new Float32Array(B * F);
    this.up = new Float32Array(B * F);
    this.cos = new Float64Array(B * (D / 2));
    this.sin = new Float64Array(B * (D / 2));
    this.rows = Array.from({ length: B }, (_, t) => this.x.subarray(t * E, (t + 1) * E));
    this.steps = weights.layers.map((layer) => ({
      qkv: new LinearStep(kernels, [layer.q, layer.k, layer.v], [this.q, this.k, this.v], options.activations, B),
      o: new LinearStep(kernels, [layer.o], [this.proj], options.activations, B),
      gateUp: new LinearStep(kernels, [layer.gate, layer.up], [this.gate, this.up], options.activations, B),
      down: new LinearStep(kernels, [layer.down], [this.proj], options.activations, B),
    }));
  }

  /** Tokens in the KV cache: the position the next token takes. */
  get position(): number {
    return this.positionValue;
  }

  /** Forgets the sequence (the cache is overwritten as the next one fills it). */
  reset(): void {
    this.positionValue = 0;
  }

  /**
   * Appends up to maxBatch tokens. With `logits` [count, vocab], writes every token's logits;
   * with `lastLogits` [vocab], only the last token's.
   */
  step(tokens: ArrayLike<number>, from: number, count: number, logits: Float32Array | undefined, lastLogits: Float32Array | undefined): void {
    const { spec, weights, kernels } = this;
    const { hiddenSize: E, heads: H, kvHeads: KV, headDim: D, vocabSize: V } = spec;
    if (count < 1 || count > this.maxBatch) throw new B158Error("E_INTERNAL", `step of ${count} tokens (1 .. ${this.maxBatch})`);
    if (this.positionValue + count > this.contextLength) {
      throw new B158Error("E_CONTEXT_FULL", `${this.positionValue + count} tokens do not fit the context of ${this.contextLength}`, {
        details: { tokens: this.positionValue + count, contextLength: this.contextLength },
        hint: "Ask for a longer context (contextLength, or fewer tokens).",
      });
    }
    for (let t = 0; t < count; t++) {
      const id = tokens[from + t]!;
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new B158Error("E_USAGE", `token id ${id} is outside the vocabulary (0 .. ${V - 1})`, { details: { token: id } });
      kernels.denseRow(weights.embed, id, this.rows[t]!);
    }
    const start = this.positionValue;
    ropeTables(this.inv, start, count, this.cos, this.sin);
    const eps = spec.rmsNormEps;
    for (let l = 0; l < weights.layers.length; l++) {
      const layer = weights.layers[l]!;
      const step = this.steps[l]!;
      kernels.rmsNorm(this.x, layer.attnNorm, count, E, eps, this.h);
      step.qkv.run(this.h, count);
      for (let t = 0; t < count; t++) {
        applyRope(this.q, t, H, D, this.cos, this.sin, spec.rope.layout);
        applyRope(this.k, t, KV, D, this.cos, this.sin, spec.rope.layout);
      }
      kernels.attention(this.cache, l, this.q, this.k, this.v, start, count, H, 1 / Math.sqrt(D), this.attn);
      if (layer.attnSubNorm !== undefined) kernels.rmsNorm(this.attn, layer.attnSubNorm, count, H * D, eps, this.attn);
      step.o.run(this.attn, count);
      addInto(this.x, this.proj, count * E);
      kernels.rmsNorm(this.x, layer.ffnNorm, count, E, eps, this.h);
      step.gateUp.run(this.h, count);
      const F = spec.intermediateSize;
      if (spec.activation === "relu2") kernels.relu2Gate(this.gate, this.up, count * F);
      else siluGate(this.gate, this.up, count * F);
      if (layer.ffnSubNorm !== undefined) kernels.rmsNorm(this.gate, layer.ffnSubNorm, count, F, eps, this.gate);
      step.down.run(this.gate, count);
      addInto(this.x, this.proj, count * E);
    }
    this.positionValue += count;
    kernels.rmsNorm(this.x, weights.norm, count, E, eps, this.h);
    if (logits !== undefined) kernels.denseLinear(weights.head, this.h, count, logits);
    if (lastLogits !== undefined) {
      if (count > 1) this.h.copyWithin(0, (count - 1) * E, count * E);
      kernels.denseLinear(weights.head, this.h, 1, lastLogits);
    }
  }
}

function addInto(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] = x[i]! + y[i]!;
}

/** gate = SiLU(gate) * up, in float64 (Math.exp: the kernels have no exp of their own for it). */
function siluGate(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}
