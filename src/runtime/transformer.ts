import { B158Error } from "../errors.js";
import type { ActivationMode, AttentionCache, DenseMatrix, KernelContext, TernaryMatrix } from "./kernels/api.js";
import { ACTIVATION_FLOOR } from "./kernels/reference.js";
import { applyRope, inverseFrequencies, ropeTables } from "./rope.js";
import type { Activation, ModelSpec } from "./spec.js";

/**
 * The forward pass: Hugging Face semantics of the Llama core and what each architecture adds, over
 * weights the kernels hold. Per layer:
 *   x = embed[token] * embeddingScale                  (Gemma3 sqrt(hidden), MiniCPM scale_emb)
 *   h = RMSNorm(x) * attn_norm;  q, k, v = h W_q, h W_k, h W_v
 *     [each projection's input RMS-normed by its own norm first]       (BitNet-embedding)
 *   [q, k = RMSNorm per head * q_norm, k_norm]         (Qwen3, Gemma3);  rope(q, k)
 *   a = softmax(q k^T * attentionScale, causal [within the sliding window]) v
 *                                                      (grouped-query: head h reads kv head h / (H/KV))
 *   [a = RMSNorm(a) * attn_sub_norm]                   (BitNet)
 *   o = a W_o;  [o = RMSNorm(o) * post_attention_norm] (Gemma3);  x += o * residualScale (MiniCPM)
 *   h = RMSNorm(x) * ffn_norm;  f = act(h W_gate) * (h W_up)    (act: SiLU, relu2 = relu(.)^2, or GELU-tanh)
 *   [f = RMSNorm(f) * ffn_sub_norm]                    (BitNet)
 *   d = f W_down;  [d = RMSNorm(d) * post_ffw_norm]    (Gemma3);  x += d * residualScale
 * then logits = (RMSNorm(x) * norm x head^T) * logitScale (MiniCPM). Gemma3's own norms hold
 * (1 + w), added at load. Every BitNet linear quantizes its input per token to int8 (ActQuant) in
 * "int8" mode, inside the kernels; plain linears (fake-quantized models run nn.Linear) never do.
 * Activations are float32 between steps; norms, rope and the FFN gating are computed in float64
 * (norms and relu2 by the kernels, with the same arithmetic as plain code); attention in float32 by
 * the kernels (api.ts), over their cache, except where a layer attends within a sliding window
 * (Gemma3): such models attend here, in float64, over a cache of their own.
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
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
  readonly postAttnNorm?: Float32Array;
  readonly postFfnNorm?: Float32Array;
  /** BitNet-embedding: each projection's input norm. */
  readonly inputNorms?: { readonly [P in "q" | "k" | "v" | "o" | "gate" | "up" | "down"]: Float32Array };
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly o: Projection;
  readonly gate: Projection;
  readonly up: Projection;
  readonly down: Projection;
}

export interface ModelWeights {
  readonly embed: DenseMatrix | EmbeddingRows;
  /** The embedding itself when the head is tied; a ternary head (a ternary source's) runs with float activations. */
  readonly head: DenseMatrix | { readonly ternary: TernaryMatrix };
  readonly norm: Float32Array;
  readonly layers: readonly LayerWeights[];
}

/** A token embedding the runtime looks rows up in itself (a ternary one: codes x scales). */
export interface EmbeddingRows {
  readonly rows: number;
  readonly cols: number;
  row(index: number, out: Float32Array): void;
}

/** Projections that read one input, after an optional norm of their own. */
interface Stage {
  readonly norm?: Float32Array;
  readonly step: LinearStep;
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
  private readonly ternaryMode: ActivationMode;

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
    // a plain linear holding ternary weights (a fake-quantized model's nn.Linear) takes float input
    this.ternaryMode = projections.some((p) => p.ternary !== undefined && p.bitnet) ? mode : "float";
  }

  run(x: Float32Array, tokens: number): void {
    if (this.ternaries.length > 0) this.kernels.linear(this.ternaries, x, tokens, this.ternaryOuts, this.ternaryMode);
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
  /** The kernels' KV cache, or (a model with sliding-window layers) keys and values attended here. */
  private readonly cache: AttentionCache | undefined;
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
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
  /** Gemma3's sliding-window layers rotate with their own rope base. */
  private readonly local: { readonly inv: Float64Array; readonly cos: Float64Array; readonly sin: Float64Array } | undefined;
  /** A projection's normed input (BitNet-embedding). */
  private readonly normed: Float32Array;
  private readonly scores: Float64Array;
  private readonly rows: Float32Array[];
  private readonly steps: { qkv: Stage[]; o: Stage[]; gateUp: Stage[]; down: Stage[] }[];

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
    const own = spec.slidingWindow !== undefined;
    this.cache = own ? undefined : kernels.attentionCache({ layers: weights.layers.length, positions: this.contextLength, kvHeads: KV, headDim: D });
    this.keys = own ? weights.layers.map(() => new Float32Array(this.contextLength * KV * D)) : [];
    this.values = own ? weights.layers.map(() => new Float32Array(this.contextLength * KV * D)) : [];
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
    const window = spec.slidingWindow;
    this.local = window === undefined ? undefined : { inv: inverseFrequencies({ ...spec, rope: { ...spec.rope, theta: window.theta, scaling: undefined } }), cos: new Float64Array(B * (D / 2)), sin: new Float64Array(B * (D / 2)) };
    this.normed = new Float32Array(spec.projectionNorms ? B * Math.max(E, H * D, F) : 0);
    this.scores = new Float64Array(own ? this.contextLength : 0);
    this.rows = Array.from({ length: B }, (_, t) => this.x.subarray(t * E, (t + 1) * E));
    const step = (projections: Projection[], outs: Float32Array[]) => new LinearStep(kernels, projections, outs, options.activations, B);
    this.steps = weights.layers.map((layer) => {
      const norms = layer.inputNorms;
      // with an input norm per projection, projections that share an input no longer share a kernel call
      if (norms === undefined) {
        return {
          qkv: [{ step: step([layer.q, layer.k, layer.v], [this.q, this.k, this.v]) }],
          o: [{ step: step([layer.o], [this.proj]) }],
          gateUp: [{ step: step([layer.gate, layer.up], [this.gate, this.up]) }],
          down: [{ step: step([layer.down], [this.proj]) }],
        };
      }
      return {
        qkv: [
          { norm: norms.q, step: step([layer.q], [this.q]) },
          { norm: norms.k, step: step([layer.k], [this.k]) },
          { norm: norms.v, step: step([layer.v], [this.v]) },
        ],
        o: [{ norm: norms.o, step: step([layer.o], [this.proj]) }],
        gateUp: [
          { norm: norms.gate, step: step([layer.gate], [this.gate]) },
          { norm: norms.up, step: step([layer.up], [this.up]) },
        ],
        down: [{ norm: norms.down, step: step([layer.down], [this.proj]) }],
      };
    });
  }

  /** Runs projections on `x` [count, width], each on its own RMS-normed copy when it has an input norm. */
  private run(stages: readonly Stage[], x: Float32Array, count: number, width: number): void {
    for (const stage of stages) {
      if (stage.norm === undefined) stage.step.run(x, count);
      else {
        this.kernels.rmsNorm(x, stage.norm, count, width, this.spec.rmsNormEps, this.normed);
        stage.step.run(this.normed, count);
      }
    }
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
  step(tokens: ArrayLike<number>, from: number, count: number, logits: Float32Array | undefined, lastLogits: Float32Array | undefined, hidden?: Float32Array): void {
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
      const row = this.rows[t]!;
      if ("row" in weights.embed) weights.embed.row(id, row);
      else kernels.denseRow(weights.embed, id, row);
      if (spec.embeddingScale !== 1) for (let i = 0; i < E; i++) row[i] = row[i]! * spec.embeddingScale;
    }
    const start = this.positionValue;
    const scaling = spec.rope.scaling;
    ropeTables(this.inv, start, count, this.cos, this.sin, scaling?.type === "longrope" ? scaling.attentionFactor : 1);
    if (this.local !== undefined) ropeTables(this.local.inv, start, count, this.local.cos, this.local.sin);
    const eps = spec.rmsNormEps;
    const F = spec.intermediateSize;
    const residual = spec.residualScale;
    for (let l = 0; l < weights.layers.length; l++) {
      const layer = weights.layers[l]!;
      const step = this.steps[l]!;
      const sliding = spec.slidingWindow?.layers[l] === true;
      kernels.rmsNorm(this.x, layer.attnNorm, count, E, eps, this.h);
      this.run(step.qkv, this.h, count, E);
      if (layer.qNorm !== undefined) kernels.rmsNorm(this.q, layer.qNorm, count * H, D, eps, this.q);
      if (layer.kNorm !== undefined) kernels.rmsNorm(this.k, layer.kNorm, count * KV, D, eps, this.k);
      const cos = sliding ? this.local!.cos : this.cos;
      const sin = sliding ? this.local!.sin : this.sin;
      for (let t = 0; t < count; t++) {
        applyRope(this.q, t, H, D, cos, sin, spec.rope.layout);
        applyRope(this.k, t, KV, D, cos, sin, spec.rope.layout);
      }
      if (this.cache !== undefined) kernels.attention(this.cache, l, this.q, this.k, this.v, start, count, H, spec.attentionScale, this.attn);
      else {
        copyInto(this.keys[l]!, start * KV * D, this.k, count * KV * D);
        copyInto(this.values[l]!, start * KV * D, this.v, count * KV * D);
        this.attention(l, start, count, sliding ? spec.slidingWindow!.size : this.contextLength);
      }
      if (layer.attnSubNorm !== undefined) kernels.rmsNorm(this.attn, layer.attnSubNorm, count, H * D, eps, this.attn);
      this.run(step.o, this.attn, count, H * D);
      if (layer.postAttnNorm !== undefined) kernels.rmsNorm(this.proj, layer.postAttnNorm, count, E, eps, this.proj);
      addInto(this.x, this.proj, count * E, residual);
      kernels.rmsNorm(this.x, layer.ffnNorm, count, E, eps, this.h);
      this.run(step.gateUp, this.h, count, E);
      if (spec.activation === "relu2") kernels.relu2Gate(this.gate, this.up, count * F);
      else activate(this.gate, this.up, count * F, spec.activation);
      if (layer.ffnSubNorm !== undefined) kernels.rmsNorm(this.gate, layer.ffnSubNorm, count, F, eps, this.gate);
      this.run(step.down, this.gate, count, F);
      if (layer.postFfnNorm !== undefined) kernels.rmsNorm(this.proj, layer.postFfnNorm, count, E, eps, this.proj);
      addInto(this.x, this.proj, count * E, residual);
    }
    this.positionValue += count;
    kernels.rmsNorm(this.x, weights.norm, count, E, eps, this.h);
    if (hidden !== undefined) copyInto(hidden, 0, this.h, count * E);
    if (logits !== undefined) this.head(this.h, count, logits);
    if (lastLogits !== undefined) {
      if (count > 1) this.h.copyWithin(0, (count - 1) * E, count * E);
      this.head(this.h, 1, lastLogits);
    }
  }

  /** Logits of `count` normed hidden states: the head (dense, or ternary with float activations), times logitScale. */
  private head(h: Float32Array, count: number, out: Float32Array): void {
    const head = this.weights.head;
    if ("ternary" in head) this.kernels.linear([head.ternary], h, count, [out], "float");
    else this.kernels.denseLinear(head, h, count, out);
    const scale = this.spec.logitScale;
    if (scale !== 1) for (let i = 0; i < count * this.spec.vocabSize; i++) out[i] = out[i]! * scale;
  }

  /** Causal attention of `count` new queries over the cache [0, start + t], or its last `window` positions. */
  private attention(layer: number, start: number, count: number, window: number): void {
    const { heads: H, kvHeads: KV, headDim: D } = this.spec;
    const group = H / KV;
    const scale = this.spec.attentionScale;
    const keys = this.keys[layer]!;
    const values = this.values[layer]!;
    const { q, attn, scores } = this;
    for (let t = 0; t < count; t++) {
      const last = start + t;
      // a sliding window holds the query and the window - 1 positions before it (transformers' and llama.cpp's masks)
      const first = Math.max(0, last - window + 1);
      for (let h = 0; h < H; h++) {
        const qBase = (t * H + h) * D;
        const kvOffset = Math.floor(h / group) * D;
        let max = -Infinity;
        for (let j = first; j <= last; j++) {
          const kBase = j * KV * D + kvOffset;
          let dot = 0;
          for (let i = 0; i < D; i++) dot += q[qBase + i]! * keys[kBase + i]!;
          const s = dot * scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = first; j <= last; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        for (let i = 0; i < D; i++) attn[qBase + i] = 0;
        for (let j = first; j <= last; j++) {
          const p = scores[j]! / sum;
          const vBase = j * KV * D + kvOffset;
          for (let i = 0; i < D; i++) attn[qBase + i] = attn[qBase + i]! + p * values[vBase + i]!;
        }
      }
    }
  }
}

/** to[at ..] = from[0 .. n) without making a view. */
function copyInto(to: Float32Array, at: number, from: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) to[at + i] = from[i]!;
}

/** x += y * scale (a residual add; MiniCPM scales the branch). */
function addInto(x: Float32Array, y: Float32Array, n: number, scale = 1): void {
  if (scale === 1) for (let i = 0; i < n; i++) x[i] = x[i]! + y[i]!;
  else for (let i = 0; i < n; i++) x[i] = x[i]! + y[i]! * scale;
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** gate = act(gate) * up. */
function activate(gate: Float32Array, up: Float32Array, n: number, activation: Activation): void {
  if (activation === "silu") {
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
    }
  } else if (activation === "gelu_tanh") {
    // torch's gelu(approximate="tanh")
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      gate[i] = 0.5 * g * (1 + Math.tanh(GELU_C * (g + 0.044715 * g * g * g))) * up[i]!;
    }
  } else throw new B158Error("E_INTERNAL", `activation ${activation}: relu2 gating runs in the kernels`);
}
