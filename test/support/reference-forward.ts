import type { B158File } from "../../src/formats/b158/read.js";

export interface ReferenceOptions {
  /**
   * The FFN activation: "silu" (default: what llama.cpp computes for both arch llama and arch
   * bitnet) or "relu2" (relu(x)^2, what 2B-4T computes in transformers).
   */
  readonly activation?: "silu" | "relu2";
  /**
   * "int8": BitNet's ActQuant before every ternary linear, in float64 (s = 127 / max(max|x|, 1e-5),
   * q = clamp(round-half-even(x * s), -128, 127), x' = q / s); "float" (default): none.
   */
  readonly activations?: "float" | "int8";
}

/**
 * An independent float64 forward pass over a .b158, with Hugging Face semantics: rotate_half rope
 * on the unpermuted Q/K rows, GQA causal attention, optional BitNet sub-norms, a gated FFN with
 * SiLU or relu2, tied or separate head. It shares no code with the GGUF exporter or the runtime
 * (src/runtime), so agreement with llama.cpp's logits on our F32 GGUF proves the tensor mapping,
 * the Q/K permutation and the scales, and agreement with the runtime proves its graph. Tiny models only.
 */
export async function referenceLogits(file: B158File, tokens: readonly number[], options: ReferenceOptions = {}): Promise<Float64Array[]> {
  const config = file.header.model.config as Record<string, number>;
  const E = config.hidden_size!;
  const H = config.num_attention_heads!;
  const KV = config.num_key_value_heads ?? H;
  const D = config.head_dim ?? E / H;
  const eps = config.rms_norm_eps ?? 1e-6;
  const theta = config.rope_theta ?? 10000;
  const byGguf = new Map(file.tensors.filter((t) => t.gguf_name !== null).map((t) => [t.gguf_name!, t.name]));
  const cache = new Map<string, Float32Array>();
  const weight = async (gguf: string) => {
    const name = byGguf.get(gguf);
    if (name === undefined) return undefined;
    if (!cache.has(name)) cache.set(name, await file.decodeFloat32(name));
    return cache.get(name)!;
  };
  const need = async (gguf: string) => {
    const w = await weight(gguf);
    if (w === undefined) throw new Error(`reference: no tensor ${gguf}`);
    return w;
  };
  const embed = await need("token_embd.weight");
  const head = (await weight("output.weight")) ?? embed;
  const vocab = embed.length / E;
  const layers = config.num_hidden_layers!;

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
  const rope = (v: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < D / 2; i++) {
        const angle = pos * Math.pow(theta, (-2 * i) / D);
        const [a, b] = [v[h * D + i]!, v[h * D + i + D / 2]!];
        v[h * D + i] = a * Math.cos(angle) - b * Math.sin(angle);
        v[h * D + i + D / 2] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  };

  const keys: Float64Array[][] = Array.from({ length: layers }, () => []);
  const values: Float64Array[][] = Array.from({ length: layers }, () => []);
  const out: Float64Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    let x = Float64Array.from(embed.subarray(tokens[pos]! * E, (tokens[pos]! + 1) * E));
    for (let l = 0; l < layers; l++) {
      const p = `blk.${l}.`;
      const h = rmsnorm(x, await need(`${p}attn_norm.weight`));
      const q = matvec(await need(`${p}attn_q.weight`), h, H * D);
      const k = matvec(await need(`${p}attn_k.weight`), h, KV * D);
      const v = matvec(await need(`${p}attn_v.weight`), h, KV * D);
      rope(q, H, pos);
      rope(k, KV, pos);
      keys[l]!.push(k);
      values[l]!.push(v);
      let attn: Float64Array = new Float64Array(H * D);
      for (let hh = 0; hh < H; hh++) {
        const g = Math.floor(hh / (H / KV));
        const scores = keys[l]!.map((kk) => {
          let s = 0;
          for (let i = 0; i < D; i++) s += q[hh * D + i]! * kk[g * D + i]!;
          return s / Math.sqrt(D);
        });
        const max = Math.max(...scores);
        const exp = scores.map((s) => Math.exp(s - max));
        const sum = exp.reduce((a, b) => a + b, 0);
        for (let t = 0; t < exp.length; t++) for (let i = 0; i < D; i++) attn[hh * D + i] = attn[hh * D + i]! + (exp[t]! / sum) * values[l]![t]![g * D + i]!;
      }
      const subAttn = await weight(`${p}attn_sub_norm.weight`);
      if (subAttn !== undefined) attn = rmsnorm(attn, subAttn);
      const o = matvec(await need(`${p}attn_output.weight`), attn, E);
      x = x.map((val, i) => val + o[i]!);
      const h2 = rmsnorm(x, await need(`${p}ffn_norm.weight`));
      const gate = matvec(await need(`${p}ffn_gate.weight`), h2, config.intermediate_size!);
      const up = matvec(await need(`${p}ffn_up.weight`), h2, config.intermediate_size!);
      let act = gate.map((gv, i) => (options.activation === "relu2" ? Math.max(gv, 0) ** 2 : gv / (1 + Math.exp(-gv))) * up[i]!);
      const subFfn = await weight(`${p}ffn_sub_norm.weight`);
      if (subFfn !== undefined) act = rmsnorm(act, subFfn);
      const down = matvec(await need(`${p}ffn_down.weight`), act, E);
      x = x.map((val, i) => val + down[i]!);
    }
    out.push(matvec(head, rmsnorm(x, await need("output_norm.weight")), vocab, false));
  }
  return out;
}
