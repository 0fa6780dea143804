import type { B158File } from "../../src/formats/b158/read.js";
import type { GgufFile } from "../../src/formats/gguf/read.js";

export interface ReferenceOptions {
  /**
   * The FFN activation: "silu" (default: what llama.cpp computes for arch llama, bitnet, qwen3 and
   * minicpm), "relu2" (relu(x)^2, what 2B-4T computes in transformers) or "gelu_tanh" (Gemma3; the
   * default for model_type gemma3_text).
   */
  readonly activation?: "silu" | "relu2" | "gelu_tanh";
  /**
   * "int8": BitNet's ActQuant before every ternary linear, in float64 (s = 127 / max(max|x|, 1e-5),
   * q = clamp(round-half-even(x * s), -128, 127), x' = q / s); "float" (default): none.
   */
  readonly activations?: "float" | "int8";
}

/**
 * Where the reference reads a model from: its Hugging Face config (hyperparameters and
 * model_type) and every weight by GGUF name as float32 effective values (ternary ones decoded with
 * their scales). `normsPlusOne`: Gemma3's norms are stored as w + 1 (a GGUF), not as Hugging Face's w.
 */
export interface ReferenceWeights {
  readonly config: Readonly<Record<string, unknown>>;
  weight(gguf: string): Promise<Float32Array | undefined>;
  readonly normsPlusOne?: boolean;
}

/** A .b158's weights, decoded by the .b158 reader (codes x scales). */
export function b158Weights(file: B158File): ReferenceWeights {
  const byGguf = new Map(file.tensors.filter((t) => t.gguf_name !== null).map((t) => [t.gguf_name!, t.name]));
  return {
    config: file.header.model.config as Record<string, unknown>,
    async weight(gguf) {
      const name = byGguf.get(gguf);
      return name === undefined ? undefined : file.decodeFloat32(name);
    },
  };
}

/**
 * A GGUF's weights, decoded here from the layouts' definitions (F32, F16, and I2_S: four 2-bit codes
 * per byte, element g + 32j of each 128-weight block at bits 6 - 2j of byte g, code - 1, times the
 * f32 scale after the n / 4 code bytes), with a Hugging Face config made from its metadata. For
 * arch qwen3 and gemma3 (NEOX rope: rows in Hugging Face's order); gemma3 as bitnet.cpp's embedding
 * converter writes it (norms w + 1, no sliding window, attention scaled by 1 / sqrt(head_dim)).
 */
export function ggufWeights(file: GgufFile): ReferenceWeights {
  const arch = String(file.scalar("general.architecture"));
  if (arch !== "qwen3" && arch !== "gemma3") throw new Error(`reference: GGUF arch ${arch} is not read here`);
  const n = (key: string) => Number(file.scalar(`${arch}.${key}`));
  const config: Record<string, unknown> = {
    model_type: arch === "gemma3" ? "gemma3_text" : "qwen3",
    hidden_size: n("embedding_length"),
    intermediate_size: n("feed_forward_length"),
    num_hidden_layers: n("block_count"),
    num_attention_heads: n("attention.head_count"),
    num_key_value_heads: n("attention.head_count_kv"),
    head_dim: n("attention.key_length"),
    rms_norm_eps: n("attention.layer_norm_rms_epsilon"),
    rope_theta: n("rope.freq_base"),
  };
  return {
    config,
    normsPlusOne: arch === "gemma3",
    async weight(gguf) {
      const t = file.tensors.find((x) => x.name === gguf);
      if (t === undefined) return undefined;
      const bytes = await file.readTensor(gguf);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const count = t.ne.reduce((a, b) => a * b, 1);
      const out = new Float32Array(count);
      if (t.type.name === "F32") for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      else if (t.type.name === "F16") for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      else if (t.type.name === "I2_S") {
        const scale = view.getFloat32(count / 4, true);
        for (let i = 0; i < count; i++) {
          const block = Math.floor(i / 128);
          const j = Math.floor((i % 128) / 32);
          const code = (bytes[block * 32 + (i % 32)]! >> (6 - 2 * j)) & 3;
          out[i] = (code - 1) * scale;
        }
      } else throw new Error(`reference: ${gguf} is ${t.type.name}`);
      return out;
    },
  };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * An independent float64 forward pass, with Hugging Face semantics: rotate_half rope on unpermuted
 * Q/K rows, GQA causal attention, a gated FFN, tied or separate head, and what each model_type adds:
 * BitNet's sub-norms; BitNet-embedding's RMSNorm before each projection (`*_norm_in`); Qwen3's and
 * Gemma3's per-head q/k norms; Gemma3's (1 + w) norms, norms around the attention and FFN outputs,
 * sqrt(hidden) embedding scale, query_pre_attn_scalar and sliding-window layers with their own rope
 * base; MiniCPM's scale_emb, scale_depth / sqrt(layers) residuals, hidden / dim_model_base logit
 * divisor and LongRoPE factors. It shares no code with the GGUF exporter or the runtime
 * (src/runtime), so agreement with llama.cpp's logits on our F32 GGUF proves the tensor mapping,
 * the Q/K permutation and the scales, and agreement with the runtime proves its graph. Tiny models only.
 */
export async function referenceLogits(file: B158File, tokens: readonly number[], options: ReferenceOptions = {}): Promise<Float64Array[]> {
  return (await referenceForward(b158Weights(file), tokens, options)).logits;
}

/** Logits and the final normed hidden state after each token. */
export async function referenceForward(source: ReferenceWeights, tokens: readonly number[], options: ReferenceOptions = {}): Promise<{ logits: Float64Array[]; hidden: Float64Array[] }> {
  const config = source.config as Record<string, number | string | null | undefined | unknown>;
  const num = (key: string) => (typeof config[key] === "number" ? (config[key] as number) : undefined);
  const modelType = config.model_type;
  const gemma = modelType === "gemma3_text";
  const minicpm = modelType === "minicpm";
  const E = num("hidden_size")!;
  const H = num("num_attention_heads")!;
  const KV = num("num_key_value_heads") ?? H;
  const D = num("head_dim") ?? E / H;
  const F = num("intermediate_size")!;
  const eps = num("rms_norm_eps") ?? 1e-6;
  const theta = num("rope_theta") ?? (gemma ? 1000000 : 10000);
  const layers = num("num_hidden_layers")!;
  const activation = options.activation ?? (gemma ? "gelu_tanh" : "silu");
  const embedScale = gemma ? Math.sqrt(E) : minicpm ? num("scale_emb")! : 1;
  const residualScale = minicpm ? num("scale_depth")! / Math.sqrt(layers) : 1;
  const logitDivisor = minicpm ? E / num("dim_model_base")! : 1;
  const attentionScale = 1 / Math.sqrt(gemma ? (num("query_pre_attn_scalar") ?? D) : D);
  const window = gemma ? num("sliding_window") : undefined;
  const layerTypes = Array.isArray(config.layer_types) ? (config.layer_types as string[]) : undefined;
  const sliding = (l: number) => window !== undefined && (layerTypes ? layerTypes[l] === "sliding_attention" : (l + 1) % (num("sliding_window_pattern") ?? 6) !== 0);
  const localTheta = num("rope_local_base_freq") ?? 10000;
  // MiniCPM's LongRoPE: the factors of the configured context, and sqrt(1 + ln(max / original) / ln(original)) on cos and sin
  const scaling = config.rope_scaling as { rope_type?: string; short_factor?: number[]; long_factor?: number[]; original_max_position_embeddings?: number } | null | undefined;
  let ropeFactors: number[] | undefined;
  let ropeMagnitude = 1;
  if (scaling?.rope_type === "longrope") {
    const max = num("max_position_embeddings")!;
    const original = scaling.original_max_position_embeddings!;
    ropeFactors = max > original ? scaling.long_factor! : scaling.short_factor!;
    ropeMagnitude = Math.sqrt(1 + Math.log(max / original) / Math.log(original));
  }

  const cache = new Map<string, Float32Array | undefined>();
  const weight = async (gguf: string) => {
    if (!cache.has(gguf)) cache.set(gguf, await source.weight(gguf));
    return cache.get(gguf);
  };
  const need = async (gguf: string) => {
    const w = await weight(gguf);
    if (w === undefined) throw new Error(`reference: no tensor ${gguf}`);
    return w;
  };
  /** Gemma3's own norms apply (1 + w) to Hugging Face weights; a GGUF already holds w + 1. */
  const norm = async (gguf: string) => {
    const w = await need(gguf);
    return gemma && !source.normsPlusOne ? w.map((v) => 1 + v) : w;
  };
  const embed = await need("token_embd.weight");
  const head = (await weight("output.weight")) ?? embed;
  const vocab = embed.length / E;

  const actQuant = (x: Float64Array) => {
    if (options.activations !== "int8") return x;
    let amax = 0;
    for (const v of x) amax = Math.max(amax, Math.abs(v));
    const s = 127 / Math.max(amax, 1e-5);
    return x.map((v) => {
      const scaled = v * s;
      let r = Math.round(scaled);
      if (r - scaled === 0.5 && r % 2 !== 0) r -= 1;
      return Math.min(127, Math.max(-128, r)) / s;
    });
  };
  const matvec = (w: Float32Array, input: Float64Array, rows: number, quantize = true) => {
    const x = quantize ? actQuant(input) : input;
    const cols = x.length;
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
      y[r] = s;
    }
    return y;
  };
  const rmsnorm = (x: Float64Array, w: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const k = 1 / Math.sqrt(ss / x.length + eps);
    return x.map((v, i) => v * k * w[i]!);
  };
  /** RMSNorm of each head's D values. */
  const headNorm = (x: Float64Array, heads: number, w: Float32Array) => {
    const out = new Float64Array(x.length);
    for (let h = 0; h < heads; h++) out.set(rmsnorm(x.subarray(h * D, (h + 1) * D), w), h * D);
    return out;
  };
  /** A projection, after its own input norm when the model has one (BitNet-embedding). */
  const project = async (p: string, name: string, input: Float64Array, rows: number) => {
    const normIn = await weight(`${p}${name}_norm_in.weight`);
    return matvec(await need(`${p}${name}.weight`), normIn === undefined ? input : rmsnorm(input, normIn), rows);
  };
  const rope = (v: Float64Array, heads: number, pos: number, base: number, factors: readonly number[] | undefined, magnitude: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const angle = (pos * Math.pow(base, (-2 * i) / D)) / (factors?.[i] ?? 1);
        const [c, s] = [Math.cos(angle) * magnitude, Math.sin(angle) * magnitude];
        const [a, b] = [v[h * D + i]!, v[h * D + i + D / 2]!];
        v[h * D + i] = a * c - b * s;
        v[h * D + i + D / 2] = b * c + a * s;
      }
    }
  };
  const act = (g: number) => {
    if (activation === "relu2") return Math.max(g, 0) ** 2;
    if (activation === "gelu_tanh") return 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3)));
    return g / (1 + Math.exp(-g));
  };

  const keys: Float64Array[][] = Array.from({ length: layers }, () => []);
  const values: Float64Array[][] = Array.from({ length: layers }, () => []);
  const logits: Float64Array[] = [];
  const hidden: Float64Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    let x = Float64Array.from(embed.subarray(tokens[pos]! * E, (tokens[pos]! + 1) * E), (v) => v * embedScale);
    for (let l = 0; l < layers; l++) {
      const p = `blk.${l}.`;
      const local = sliding(l);
      const h = rmsnorm(x, await norm(`${p}attn_norm.weight`));
      let q = await project(p, "attn_q", h, H * D);
      let k = await project(p, "attn_k", h, KV * D);
      const v = await project(p, "attn_v", h, KV * D);
      if ((await weight(`${p}attn_q_norm.weight`)) !== undefined) q = headNorm(q, H, await norm(`${p}attn_q_norm.weight`));
      if ((await weight(`${p}attn_k_norm.weight`)) !== undefined) k = headNorm(k, KV, await norm(`${p}attn_k_norm.weight`));
      rope(q, H, pos, local ? localTheta : theta, local ? undefined : ropeFactors, local ? 1 : ropeMagnitude);
      rope(k, KV, pos, local ? localTheta : theta, local ? undefined : ropeFactors, local ? 1 : ropeMagnitude);
      keys[l]!.push(k);
      values[l]!.push(v);
      const first = local ? Math.max(0, pos - window! + 1) : 0;
      let attn: Float64Array = new Float64Array(H * D);
      for (let hh = 0; hh < H; hh++) {
        const g = Math.floor(hh / (H / KV));
        const scores: number[] = [];
        for (let t = first; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < D; i++) s += q[hh * D + i]! * keys[l]![t]![g * D + i]!;
          scores.push(s * attentionScale);
        }
        const max = Math.max(...scores);
        const exp = scores.map((s) => Math.exp(s - max));
        const sum = exp.reduce((a, b) => a + b, 0);
        for (let t = 0; t < exp.length; t++) for (let i = 0; i < D; i++) attn[hh * D + i] = attn[hh * D + i]! + (exp[t]! / sum) * values[l]![first + t]![g * D + i]!;
      }
      const subAttn = await weight(`${p}attn_sub_norm.weight`);
      if (subAttn !== undefined) attn = rmsnorm(attn, subAttn);
      let o = await project(p, "attn_output", attn, E);
      if (gemma) o = rmsnorm(o, await norm(`${p}post_attention_norm.weight`));
      x = x.map((val, i) => val + o[i]! * residualScale);
      const h2 = rmsnorm(x, await norm(`${p}ffn_norm.weight`));
      const gate = await project(p, "ffn_gate", h2, F);
      const up = await project(p, "ffn_up", h2, F);
      let f = gate.map((gv, i) => act(gv) * up[i]!);
      const subFfn = await weight(`${p}ffn_sub_norm.weight`);
      if (subFfn !== undefined) f = rmsnorm(f, subFfn);
      let down = await project(p, "ffn_down", f, E);
      if (gemma) down = rmsnorm(down, await norm(`${p}post_ffw_norm.weight`));
      x = x.map((val, i) => val + down[i]! * residualScale);
    }
    const final = rmsnorm(x, await norm("output_norm.weight"));
    hidden.push(final);
    logits.push(matvec(head, final, vocab, false).map((v) => v / logitDivisor));
  }
  return { logits, hidden };
}

/** An embedding model's output: the last token's final hidden state, L2-normalized (last-token pooling). */
export function lastTokenEmbedding(hidden: readonly Float64Array[]): Float64Array {
  const last = hidden.at(-1)!;
  const norm = Math.sqrt(last.reduce((s, v) => s + v * v, 0));
  return last.map((v) => v / norm);
}
