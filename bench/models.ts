import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeSafetensorsHeader, type TensorToWrite } from "../src/formats/safetensors/write.js";
import type { Dtype } from "../src/formats/safetensors/dtypes.js";
import { DTYPE_BYTES } from "../src/formats/safetensors/dtypes.js";
import { toBf16Bits } from "../src/pack/float16.js";
import { llama3TokenizerJson } from "../fixtures/lib/tokenizers.js";

/**
 * Synthetic checkpoints with the exact tensor names, shapes and dtypes of real models
 * (docs/families.md; the Hub repos' config.json and safetensors headers), written by streaming from a reusable
 * random pool so generating 4.8 GB needs no 4.8 GB of memory. Cached between bench runs.
 */
export interface BenchModel {
  readonly id: string;
  readonly repo: string;
  readonly config: Record<string, unknown>;
  readonly tensors: readonly { name: string; dtype: Dtype; shape: number[]; kind: "latent" | "packed" | "scale" | "norm" | "embedding" }[];
}

function layers(count: number, make: (prefix: string) => BenchModel["tensors"]): BenchModel["tensors"] {
  return Array.from({ length: count }, (_, i) => make(`model.layers.${i}`)).flat();
}

function linear(name: string, out: number, inp: number, packed: boolean, dtype: Dtype): BenchModel["tensors"] {
  return packed
    ? [
        { name: `${name}.weight`, dtype: "U8", shape: [out / 4, inp], kind: "packed" },
        { name: `${name}.weight_scale`, dtype: "BF16", shape: [1], kind: "scale" },
      ]
    : [{ name: `${name}.weight`, dtype, shape: [out, inp], kind: "latent" }];
}

export function bitnetLarge(): BenchModel {
  const E = 1536, F = 4096, V = 32002;
  return {
    id: "bitnet_b1_58-large",
    repo: "1bitLLM/bitnet_b1_58-large",
    config: { architectures: ["BitnetForCausalLM"], model_type: "llama", hidden_size: E, intermediate_size: F, num_hidden_layers: 24, num_attention_heads: 16, num_key_value_heads: 16, vocab_size: V, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, hidden_act: "silu", tie_word_embeddings: true, weight_bits: 1, input_bits: 8, torch_dtype: "float32" },
    tensors: [
      { name: "model.embed_tokens.weight", dtype: "F32", shape: [V, E], kind: "embedding" },
      ...layers(24, (p) => [
        { name: `${p}.input_layernorm.weight`, dtype: "F32", shape: [E], kind: "norm" },
        ...linear(`${p}.self_attn.q_proj`, E, E, false, "F32"),
        ...linear(`${p}.self_attn.k_proj`, E, E, false, "F32"),
        ...linear(`${p}.self_attn.v_proj`, E, E, false, "F32"),
        ...linear(`${p}.self_attn.o_proj`, E, E, false, "F32"),
        { name: `${p}.self_attn.inner_attn_ln.weight`, dtype: "F32", shape: [E], kind: "norm" },
        { name: `${p}.post_attention_layernorm.weight`, dtype: "F32", shape: [E], kind: "norm" },
        ...linear(`${p}.mlp.gate_proj`, F, E, false, "F32"),
        ...linear(`${p}.mlp.up_proj`, F, E, false, "F32"),
        ...linear(`${p}.mlp.down_proj`, E, F, false, "F32"),
        { name: `${p}.mlp.ffn_layernorm.weight`, dtype: "F32", shape: [F], kind: "norm" },
      ]),
      { name: "model.norm.weight", dtype: "F32", shape: [E], kind: "norm" },
    ],
  };
}

/** `layerCount` < 30 makes a shorter model of the same shapes, for narrowed runs. */
export function bitnet2B4T(packed: boolean, layerCount = 30): BenchModel {
  const E = 2560, F = 6912, V = 128256, KV = 5 * 128;
  const suffix = layerCount === 30 ? "" : `-L${layerCount}`;
  return {
    id: (packed ? "bitnet-b1.58-2B-4T" : "bitnet-b1.58-2B-4T-bf16") + suffix,
    repo: packed ? "microsoft/bitnet-b1.58-2B-4T" : "microsoft/bitnet-b1.58-2B-4T-bf16",
    config: {
      architectures: ["BitNetForCausalLM"], model_type: "bitnet", hidden_size: E, intermediate_size: F, num_hidden_layers: layerCount, num_attention_heads: 20, num_key_value_heads: 5, head_dim: 128,
      vocab_size: V, rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 4096, hidden_act: "relu2", tie_word_embeddings: true, torch_dtype: "bfloat16",
      quantization_config: { quant_method: "bitnet", linear_class: "autobitlinear", quantization_mode: packed ? "offline" : "online" },
    },
    tensors: [
      { name: "model.embed_tokens.weight", dtype: "BF16", shape: [V, E], kind: "embedding" },
      ...layers(layerCount, (p) => [
        { name: `${p}.input_layernorm.weight`, dtype: "BF16", shape: [E], kind: "norm" },
        ...linear(`${p}.self_attn.q_proj`, E, E, packed, "BF16"),
        ...linear(`${p}.self_attn.k_proj`, KV, E, packed, "BF16"),
        ...linear(`${p}.self_attn.v_proj`, KV, E, packed, "BF16"),
        ...linear(`${p}.self_attn.o_proj`, E, E, packed, "BF16"),
        { name: `${p}.self_attn.attn_sub_norm.weight`, dtype: "BF16", shape: [E], kind: "norm" },
        { name: `${p}.post_attention_layernorm.weight`, dtype: "BF16", shape: [E], kind: "norm" },
        ...linear(`${p}.mlp.gate_proj`, F, E, packed, "BF16"),
        ...linear(`${p}.mlp.up_proj`, F, E, packed, "BF16"),
        ...linear(`${p}.mlp.down_proj`, E, F, packed, "BF16"),
        { name: `${p}.mlp.ffn_sub_norm.weight`, dtype: "BF16", shape: [F], kind: "norm" },
      ]),
      { name: "model.norm.weight", dtype: "BF16", shape: [E], kind: "norm" },
    ],
  };
}

const POOL_BYTES = 32 * 1024 * 1024;

/** Random-looking bytes of each kind, generated once: latent ~ N(0, 0.02), packed codes never 3. */
function pools(): Record<string, Uint8Array> {
  let s = 2024;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  const normal = () => ((next() / 2 ** 32 + next() / 2 ** 32 + next() / 2 ** 32 - 1.5) * 0.04);
  const f32 = new Float32Array(POOL_BYTES / 4).map(normal);
  const bf16 = Uint16Array.from({ length: POOL_BYTES / 2 }, () => toBf16Bits(normal()));
  const packed = Uint8Array.from({ length: POOL_BYTES }, () => {
    let b = 0;
    for (let i = 0; i < 4; i++) b |= (next() % 3) << (2 * i);
    return b;
  });
  return { F32: new Uint8Array(f32.buffer), BF16: new Uint8Array(bf16.buffer), U8: packed };
}

/** Writes the model under `dir` once (a marker file says it is complete); returns its weights file size. */
export async function ensureModel(model: BenchModel, dir: string): Promise<{ dir: string; bytes: number; generatedSeconds: number | null }> {
  const marker = join(dir, ".complete");
  const file = join(dir, "model.safetensors");
  try {
    const bytes = Number(await readFile(marker, "utf8"));
    if (bytes > 0) return { dir, bytes, generatedSeconds: null };
  } catch {
    // not generated yet
  }
  const started = process.hrtime.bigint();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), JSON.stringify(model.config, null, 2));
  const byKind = pools();
  const placeholders: TensorToWrite[] = model.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: { byteLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype] } as Uint8Array }));
  const header = encodeSafetensorsHeaderLengths(placeholders);
  const handle = await open(file, "w");
  let position = 0;
  const write = async (bytes: Uint8Array) => {
    await handle.write(bytes, 0, bytes.byteLength, position);
    position += bytes.byteLength;
  };
  try {
    await write(header);
    let rotate = 0;
    for (const t of model.tensors) {
      const length = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
      if (t.kind === "scale") {
        await write(new Uint8Array(new Uint16Array([toBf16Bits(0.03125)]).buffer));
        continue;
      }
      if (t.kind === "norm") {
        const ones = t.dtype === "F32" ? new Uint8Array(Float32Array.from({ length: length / 4 }, (_, i) => 1 + (i % 7) / 100).buffer) : new Uint8Array(Uint16Array.from({ length: length / 2 }, (_, i) => toBf16Bits(1 + (i % 7) / 100)).buffer);
        await write(ones);
        continue;
      }
      const pool = byKind[t.dtype]!;
      for (let done = 0; done < length; ) {
        const start = (rotate = (rotate + 4096 * 7) % (POOL_BYTES / 2));
        const n = Math.min(length - done, POOL_BYTES / 2);
        await write(pool.subarray(start, start + n));
        done += n;
      }
    }
  } finally {
    await handle.close();
  }
  await writeFile(marker, String(position));
  return { dir, bytes: position, generatedSeconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/**
 * The model's tokenizer.json (export and the runtime need one): Llama-3-style at the model's
 * vocabulary size, with Llama-3's 256 special tokens and regular tokens below them, as the real
 * 2B-4T's has. Rewritten when what is there differs (earlier benches wrote ~127k special tokens,
 * which made each streamed token's decode take ~2 ms); returns whether it was, so that files made
 * with the old one are made again.
 */
export async function ensureTokenizer(model: BenchModel, dir: string): Promise<boolean> {
  const path = join(dir, "tokenizer.json");
  const text = JSON.stringify(llama3TokenizerJson(model.config.vocab_size as number, { llama3Specials: true }).json);
  const current = await readFile(path, "utf8").catch(() => undefined);
  if (current === text) return false;
  await writeFile(path, text);
  return true;
}

/** The header only: the writer needs just each tensor's byte length. */
function encodeSafetensorsHeaderLengths(tensors: TensorToWrite[]): Uint8Array {
  // encodeSafetensorsHeader checks data.byteLength against the shape; our placeholders carry exactly that
  return encodeSafetensorsHeader(tensors);
}

/** Every weight of the model (all parameters; a packed byte holds 4), as the CPU-ns per weight figures count them. */
export function modelWeights(model: BenchModel): number {
  return model.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1) * (t.kind === "packed" ? 4 : 1), 0);
}
