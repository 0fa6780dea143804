import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultDims, generateCheckpoint, generateExample, type FixtureFamily, type FixtureResult } from "../fixtures/generate.js";
import { localCheckpointFiles } from "../src/checkpoint/local.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { DTYPE_BYTES, type Dtype } from "../src/formats/safetensors/dtypes.js";
import { readTensorBytes } from "../src/formats/safetensors/read.js";
import { decodeSentencePieceModel } from "../src/formats/sentencepiece/read.js";
import { MODEL_TYPE, PIECE_TYPE } from "../src/formats/sentencepiece/spec.js";
import { fromBf16Bits, fromF16Bits } from "../src/pack/float16.js";
import { unpackHfPacked } from "../src/pack/hf-packed.js";
import { ternarize } from "../src/pack/ternarize.js";

const committedExample = fileURLToPath(new URL("../fixtures/example/", import.meta.url));
const FAMILIES: FixtureFamily[] = ["bitnet-1bitllm", "bitnet-2b4t-bf16", "bitnet-2b4t-packed", "llama-bitnet-packed", "llama-generic"];
const LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-fixtures-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Byte equality for typed arrays (vitest's deep toEqual walks them element by element: seconds per MiB). */
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

interface RawTensor {
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
  file: string;
}

/** Every tensor of a generated checkpoint, parsed by hand (independently of src/formats/safetensors/read.ts). */
async function loadTensors(result: FixtureResult): Promise<Map<string, RawTensor>> {
  const tensors = new Map<string, RawTensor>();
  for (const file of result.files.filter((f) => f.endsWith(".safetensors"))) {
    const bytes = new Uint8Array(await readFile(join(result.dir, file)));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: Dtype; shape: number[]; data_offsets: [number, number] }>;
    for (const [name, entry] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data: bytes.subarray(8 + n + entry.data_offsets[0], 8 + n + entry.data_offsets[1]), file });
    }
  }
  return tensors;
}

const readJson = async (result: FixtureResult, name: string) => JSON.parse(await readFile(join(result.dir, name), "utf8")) as Record<string, unknown>;

/** Decodes F32 / F16 / BF16 bytes to numbers. */
function floats(t: RawTensor): number[] {
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const size = DTYPE_BYTES[t.dtype];
  return Array.from({ length: t.data.byteLength / size }, (_, i) =>
    t.dtype === "F32" ? view.getFloat32(4 * i, true) : t.dtype === "F16" ? fromF16Bits(view.getUint16(2 * i, true)) : fromBf16Bits(view.getUint16(2 * i, true)),
  );
}

describe("fixtures/example", () => {
  it("is exactly what the generator writes (npm run fixtures is reproducible) and stays under 2 MiB", async () => {
    const dir = join(root, "example");
    const result = await generateExample(dir);
    const committed = (await readdir(committedExample)).sort();
    expect(result.files).toEqual(committed);
    for (const name of committed) {
      expect(Buffer.compare(await readFile(join(dir, name)), await readFile(join(committedExample, name))), name).toBe(0);
    }
    const size = (await Promise.all(committed.map((n) => readFile(join(committedExample, n))))).reduce((s, b) => s + b.byteLength, 0);
    expect(size).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(result.config).toMatchObject({ architectures: ["BitNetForCausalLM"], hidden_size: 256, intermediate_size: 768, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 512 });
  });
});

describe("generateCheckpoint", () => {
  const generated = new Map<FixtureFamily, FixtureResult>();
  beforeAll(async () => {
    for (const family of FAMILIES) generated.set(family, await generateCheckpoint({ family, dir: join(root, `f-${family}`) }));
  });

  it.each(FAMILIES)("%s: writes the family's files, real tensor names and dtypes, and config vocab == embedding rows", async (family) => {
    const result = generated.get(family)!;
    const spm = family === "bitnet-1bitllm";
    expect(result.files).toEqual(
      [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer_config.json",
        ...(spm ? ["added_tokens.json", "tokenizer.model"] : ["tokenizer.json"]),
      ].sort(),
    );
    expect((await readdir(result.dir)).sort()).toEqual(result.files);
    const tensors = await loadTensors(result);
    expect([...tensors.keys()].sort()).toEqual(result.tensors.map((t) => t.name).sort());
    const config = await readJson(result, "config.json");
    expect(config).toEqual(result.config);
    const dims = defaultDims(family);
    expect(config).toMatchObject({ hidden_size: dims.hidden, num_hidden_layers: dims.layers, vocab_size: dims.vocab, num_key_value_heads: dims.kvHeads });
    expect(tensors.get("model.embed_tokens.weight")!.shape).toEqual([config.vocab_size, config.hidden_size]);
    expect(tensors.has("lm_head.weight")).toBe(config.tie_word_embeddings === false);

    const packed = family === "bitnet-2b4t-packed" || family === "llama-bitnet-packed";
    const floatDtype = ({ "bitnet-1bitllm": "F32", "bitnet-2b4t-bf16": "BF16", "bitnet-2b4t-packed": "BF16", "llama-bitnet-packed": "BF16", "llama-generic": "F16" } as Record<string, string>)[family];
    const subNorms = family === "bitnet-1bitllm" ? ["self_attn.inner_attn_ln", "mlp.ffn_layernorm"] : family.startsWith("bitnet-2b4t") ? ["self_attn.attn_sub_norm", "mlp.ffn_sub_norm"] : [];
    const expected = ["model.embed_tokens.weight", "model.norm.weight", ...(tensors.has("lm_head.weight") ? ["lm_head.weight"] : [])];
    for (let layer = 0; layer < dims.layers; layer++) {
      const p = `model.layers.${layer}`;
      expected.push(`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`, ...subNorms.map((n) => `${p}.${n}.weight`));
      for (const linear of LINEARS) {
        expected.push(`${p}.${linear}.weight`, ...(packed ? [`${p}.${linear}.weight_scale`] : []));
        const weight = tensors.get(`${p}.${linear}.weight`)!;
        expect(weight.dtype).toBe(packed ? "U8" : floatDtype);
        if (packed) expect(tensors.get(`${p}.${linear}.weight_scale`)).toMatchObject({ dtype: "BF16", shape: [1] });
      }
      expect(tensors.get(`${p}.self_attn.k_proj.weight`)!.shape).toEqual(packed ? [(dims.kvHeads * 64) / 4, dims.hidden] : [dims.kvHeads * 64, dims.hidden]);
      expect(tensors.get(`${p}.mlp.down_proj.weight`)!.shape).toEqual(packed ? [dims.hidden / 4, dims.intermediate] : [dims.hidden, dims.intermediate]);
    }
    expect([...tensors.keys()].sort()).toEqual(expected.sort());
    for (const [name, t] of tensors) if (!name.endsWith(".weight_scale") && !(packed && LINEARS.some((l) => name.endsWith(`${l}.weight`)))) expect(t.dtype, name).toBe(floatDtype);

    // norms near 1, embeddings and latent weights small
    const norm = floats(tensors.get("model.norm.weight")!);
    expect(Math.min(...norm)).toBeGreaterThan(0.7);
    expect(Math.max(...norm)).toBeLessThan(1.3);
    const embed = floats(tensors.get("model.embed_tokens.weight")!);
    const std = Math.sqrt(embed.reduce((s, v) => s + v * v, 0) / embed.length);
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
  });

  it.each(FAMILIES.filter((f) => f !== "bitnet-1bitllm"))("%s: tokenizer.json is a Llama-3-style byte-level BPE whose ids fill the vocabulary, specials last", async (family) => {
    const result = generated.get(family)!;
    const tokenizer = (await readJson(result, "tokenizer.json")) as {
      added_tokens: { id: number; content: string; special: boolean }[];
      model: { type: string; vocab: Record<string, number>; merges: [string, string][] };
      pre_tokenizer: { pretokenizers: { type: string }[] };
    };
    const vocab = result.config.vocab_size as number;
    const ids = [...Object.values(tokenizer.model.vocab), ...tokenizer.added_tokens.map((t) => t.id)].sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: vocab }, (_, i) => i));
    expect(tokenizer.model.type).toBe("BPE");
    expect(tokenizer.model.vocab["!"]).toBe(0);
    expect(tokenizer.model.vocab["Ġ"]).toBe(220);
    expect(tokenizer.pre_tokenizer.pretokenizers.map((p) => p.type)).toEqual(["Split", "ByteLevel"]);
    for (const [a, b] of tokenizer.model.merges) expect(tokenizer.model.vocab[a + b], `${a} ${b}`).toBeDefined();
    const special = (content: string) => tokenizer.added_tokens.find((t) => t.content === content)!.id;
    expect(tokenizer.added_tokens.at(-1)!.id).toBe(vocab - 1);
    expect(result.config.bos_token_id).toBe(special("<|begin_of_text|>"));
    expect(result.config.eos_token_id).toBe(special("<|end_of_text|>"));
    expect(special("<|eot_id|>")).toBe(special("<|begin_of_text|>") + 9);
    const tokenizerConfig = await readJson(result, "tokenizer_config.json");
    expect(tokenizerConfig.chat_template).toContain("<|eot_id|>");
    expect(Object.keys(tokenizerConfig.added_tokens_decoder as object)).toEqual(tokenizer.added_tokens.map((t) => String(t.id)));
  });

  it("bitnet-1bitllm: tokenizer.model round-trips through the strict reader; config vocab = pieces + 2 added tokens", async () => {
    const result = generated.get("bitnet-1bitllm")!;
    const bytes = new Uint8Array(await readFile(join(result.dir, "tokenizer.model")));
    const model = decodeSentencePieceModel(bytes);
    const pieces = (result.config.vocab_size as number) - 2;
    expect(model.pieces).toHaveLength(pieces);
    expect(model.pieces.slice(0, 3)).toEqual([
      { piece: "<unk>", score: 0, type: PIECE_TYPE.UNKNOWN },
      { piece: "<s>", score: 0, type: PIECE_TYPE.CONTROL },
      { piece: "</s>", score: 0, type: PIECE_TYPE.CONTROL },
    ]);
    expect(model.pieces.slice(3, 259).map((p) => p.piece)).toEqual(Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
    expect(model.pieces.slice(3, 259).every((p) => p.type === PIECE_TYPE.BYTE)).toBe(true);
    expect(model.pieces.slice(259).every((p, i, all) => p.type === PIECE_TYPE.NORMAL && p.score < (i === 0 ? 0 : all[i - 1]!.score))).toBe(true);
    expect(model.trainer).toEqual({ modelType: MODEL_TYPE.BPE, vocabSize: pieces, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 });
    expect(new Set(model.pieces.map((p) => p.piece)).size).toBe(model.pieces.length);
    expect(await readJson(result, "added_tokens.json")).toEqual({ "<pad>": pieces, "<mask>": pieces + 1 });
    expect(result.config).toMatchObject({ bos_token_id: 1, eos_token_id: 2, pad_token_id: pieces });
  });

  it("packed families unpack to the recorded codes, and weight_scale follows the family's convention", async () => {
    for (const family of ["bitnet-2b4t-packed", "llama-bitnet-packed"] as const) {
      const result = generated.get(family)!;
      const tensors = await loadTensors(result);
      const names = result.tensors.filter((t) => t.dtype === "U8").map((t) => t.name);
      expect(Object.keys(result.ternary).sort()).toEqual(names.sort());
      for (const [name, { codes, scale }] of Object.entries(result.ternary)) {
        const tensor = tensors.get(name)!;
        const [rows, cols] = tensor.shape as [number, number];
        expect(sameBytes(unpackHfPacked(tensor.data, rows, cols), codes), name).toBe(true);
        const raw = tensors.get(name.replace(/\.weight$/, ".weight_scale"))!.data;
        const stored = fromBf16Bits(raw[0]! | (raw[1]! << 8));
        // autobitlinear (2B-4T) stores the multiplier; bitlinear (Falcon3 / HF1BitLLM) its inverse
        expect(family === "bitnet-2b4t-packed" ? stored : 1 / stored).toBe(scale);
        expect(scale).toBeGreaterThan(0.01);
        expect(scale).toBeLessThan(0.1);
      }
    }
  });

  it("ternary latent fixtures hold exactly code x scale in every latent dtype", async () => {
    for (const latentDtype of ["F32", "F16", "BF16"] as const) {
      const result = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, `tern-${latentDtype}`), weights: "ternary", latentDtype, dims: { layers: 1, vocab: 300 } });
      const tensors = await loadTensors(result);
      expect(Object.keys(result.ternary)).toHaveLength(7);
      for (const [name, { codes, scale, stored }] of Object.entries(result.ternary)) {
        const tensor = tensors.get(name)!;
        expect(tensor.dtype).toBe(latentDtype);
        const values = floats(tensor);
        expect(values.every((v, i) => v === codes[i]! * stored!)).toBe(true);
        // what the framework computes: absmean of the values, c x (nonzero fraction)
        expect(scale).toBe(ternarize(tensor.data, latentDtype).scale.scale);
        expect(new Set(codes)).toEqual(new Set([-1, 0, 1]));
      }
    }
  });

  it.each([
    ["llama-fake-quantized", "tensor", false],
    ["llama-fake-quantized", "row", false],
    ["llama-fake-quantized", 64, true],
    ["qwen3-fake-quantized", 128, true],
  ] as const)("%s (%s, ternary heads %s): a plain config, and weights exactly codes x the recorded scales", async (family, granularity, ternaryHeads) => {
    const result = await generateCheckpoint({ family, dir: join(root, `fake-${family}-${granularity}`), granularity, ternaryHeads, dims: { layers: 1 } });
    expect(result.config).not.toHaveProperty("quantization_config");
    expect(result.config.architectures).toEqual([family === "qwen3-fake-quantized" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"]);
    const tensors = await loadTensors(result);
    const heads = ["model.embed_tokens.weight", "lm_head.weight"];
    expect(Object.keys(result.ternary).sort()).toEqual([...LINEARS.map((l) => `model.layers.0.${l}.weight`), ...(ternaryHeads ? heads : [])].sort());
    for (const [name, { codes, scale }] of Object.entries(result.ternary)) {
      const tensor = tensors.get(name)!;
      expect(tensor.dtype).toBe("F16");
      const K = tensor.shape[1]!;
      const values = floats(tensor);
      const G = typeof scale === "number" ? values.length : scale.groupSize;
      expect(G).toBe(granularity === "tensor" ? values.length : granularity === "row" ? K : granularity);
      expect(values.every((v, i) => v === codes[i]! * (typeof scale === "number" ? scale : scale.values[Math.floor(i / G)]!))).toBe(true);
    }
    if (family === "qwen3-fake-quantized") expect(tensors.get("model.layers.0.self_attn.q_norm.weight")!.shape).toEqual([64]);
  });

  it("is deterministic: two runs give byte-identical files; another seed changes the weights only", async () => {
    const a = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "det-a"), shards: 2, seed: 9, dims: { layers: 1 } });
    const b = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "det-b"), shards: 2, seed: 9, dims: { layers: 1 } });
    const c = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "det-c"), shards: 2, seed: 10, dims: { layers: 1 } });
    expect(a.files).toEqual(b.files);
    for (const name of a.files) {
      expect(Buffer.compare(await readFile(join(a.dir, name)), await readFile(join(b.dir, name))), name).toBe(0);
      const differs = Buffer.compare(await readFile(join(a.dir, name)), await readFile(join(c.dir, name))) !== 0;
      expect(differs, name).toBe(name.endsWith(".safetensors"));
    }
  });

  it.each([2, 3, 5])("%i shards hold the same tensors as one file, with an index naming each tensor's shard", async (shards) => {
    const one = await generateCheckpoint({ family: "llama-bitnet-packed", dir: join(root, `one-${shards}`), dims: { layers: 1 }, seed: 4 });
    const many = await generateCheckpoint({ family: "llama-bitnet-packed", dir: join(root, `many-${shards}`), dims: { layers: 1 }, seed: 4, shards });
    const names = Array.from({ length: shards }, (_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`);
    expect(many.files).toEqual([...one.files.filter((f) => f !== "model.safetensors"), ...names, "model.safetensors.index.json"].sort());
    expect(many.tensors).toEqual(one.tensors);
    const [a, b] = [await loadTensors(one), await loadTensors(many)];
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, t] of a) {
      const s = b.get(name)!;
      expect([s.dtype, s.shape]).toEqual([t.dtype, t.shape]);
      expect(sameBytes(s.data, t.data), name).toBe(true);
    }
    const index = (await readJson(many, "model.safetensors.index.json")) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(index.metadata.total_size).toBe([...a.values()].reduce((sum, t) => sum + t.data.byteLength, 0));
    expect(Object.keys(index.weight_map)).toEqual([...a.keys()].sort());
    for (const [name, t] of b) expect(index.weight_map[name]).toBe(t.file);
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(names)); // no empty shard
  });

  it("fixtures open through the project's strict checkpoint reader", async () => {
    const result = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "strict"), dims: { layers: 1 }, shards: 2 });
    const checkpoint = await openCheckpoint(await localCheckpointFiles(result.dir));
    try {
      for (const t of result.tensors) {
        const tensor = checkpoint.tensorsByName.get(t.name)!;
        expect([tensor.dtype, tensor.shape]).toEqual([t.dtype, t.shape]);
      }
      const [name, { codes }] = Object.entries(result.ternary)[0]!;
      const tensor = checkpoint.tensorsByName.get(name)!;
      const bytes = await readTensorBytes(await checkpoint.source(tensor.shard), tensor);
      expect(sameBytes(unpackHfPacked(bytes, tensor.shape[0]!, tensor.shape[1]!), codes)).toBe(true);
    } finally {
      await checkpoint.close();
    }
  });

  it("refuses a shard count it cannot fill", async () => {
    await expect(generateCheckpoint({ family: "llama-generic", dir: join(root, "bad-shards"), dims: { layers: 1 }, shards: 1000 })).rejects.toThrow(RangeError);
  });
});
