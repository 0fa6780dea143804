import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { loadTokenizer } from "../src/runtime/tokenizer.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { inspectCheckpoint } from "../src/index.js";
import { loadModel } from "../src/runtime/model.js";
import { getValidator } from "../src/schemas.js";
import { expectB158Error } from "./support/expect-error.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { localCheckpointFiles } from "../src/checkpoint/local.js";
import { readTensorBytes } from "../src/formats/safetensors/read.js";
import { writeSafetensorsFile } from "../src/formats/safetensors/write.js";

/**
 * The 2026 families by their evidence (config model_type / architectures plus tensor names, never a
 * repo name): BitNet-embedding (Qwen3 / Gemma3 backbones with an RMSNorm before each projection),
 * the fake-quantized Qwen3 (Ternary-Bonsai) and MiniCPM4 (BitCPM4) ones, the look-alikes that must
 * not be taken for them, and the checkpoints b158 refuses (PrismML 1-bit, MLX affine packing).
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-families-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("BitNet-embedding: model_type qwen3 / gemma3_text plus per-projection norms", () => {
  it.each([
    ["qwen3-bitnet-embedding", "qwen3", ""],
    ["gemma3-bitnet-embedding", "gemma3_text", "model."],
  ] as const)("%s is family 7, online (absmean), and maps every tensor to the embedding converter's GGUF names", async (family, modelType, prefix) => {
    const fixture = await generateCheckpoint({ family, dir: join(root, family), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(getValidator("inspect")(report)).toBe(true);
    expect(report.family).toMatchObject({ id: "bitnet-embedding", number: 7, semantics: "online", semanticsSource: "config" });
    expect(report.family.evidence).toEqual(expect.arrayContaining([`model_type "${modelType}"`, "7 per-projection input norms (<proj>.norm.weight)"]));
    expect(report.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const gguf = (name: string) => report.tensors.find((t) => t.name === `${prefix}${name}`);
    for (const t of report.tensors.filter((t) => /_proj\.weight$/.test(t.name))) expect(t).toMatchObject({ role: "ternary-linear", action: "ternarize", semantics: "online" });
    expect(gguf("layers.0.self_attn.q_proj.norm.weight")).toMatchObject({ role: "norm", ggufName: "blk.0.attn_q_norm_in.weight" });
    expect(gguf("layers.0.self_attn.o_proj.norm.weight")).toMatchObject({ role: "norm", ggufName: "blk.0.attn_output_norm_in.weight", shape: [fixture.config.num_attention_heads as number * (fixture.config.head_dim as number)] });
    expect(gguf("layers.0.mlp.down_proj.norm.weight")).toMatchObject({ ggufName: "blk.0.ffn_down_norm_in.weight", shape: [fixture.config.intermediate_size] });
    expect(gguf("layers.0.self_attn.k_norm.weight")).toMatchObject({ ggufName: "blk.0.attn_k_norm.weight" });
    expect(gguf("embed_tokens.weight")).toMatchObject({ role: "embedding", action: "keep", ggufName: "token_embd.weight" });
    expect(gguf("norm.weight")).toMatchObject({ ggufName: "output_norm.weight" });
    if (modelType === "gemma3_text") {
      expect(gguf("layers.0.post_attention_layernorm.weight")!.ggufName).toBe("blk.0.post_attention_norm.weight");
      expect(gguf("layers.0.pre_feedforward_layernorm.weight")!.ggufName).toBe("blk.0.ffn_norm.weight");
      expect(gguf("layers.0.post_feedforward_layernorm.weight")!.ggufName).toBe("blk.0.post_ffw_norm.weight");
    } else {
      expect(gguf("layers.0.post_attention_layernorm.weight")!.ggufName).toBe("blk.0.ffn_norm.weight");
    }
  });

  it("a plain Qwen3 / Gemma3 (no per-projection norms) is not BitNet: generic, nothing ternarized", async () => {
    for (const family of ["qwen3-bitnet-embedding", "gemma3-bitnet-embedding"] as const) {
      const fixture = await generateCheckpoint({ family, dir: join(root, `plain-${family}`), dims: { layers: 1 }, plain: true });
      const report = await inspectCheckpoint(fixture.dir);
      expect(report.family.id, family).toBe("generic");
      expect(report.tensors.some((t) => t.layouts !== undefined)).toBe(false);
      await expectB158Error(convertCheckpoint(fixture.dir, { layout: "i2_s", output: join(root, `plain-${family}.b158`), threads: 0 }), "E_MODEL_FAMILY");
    }
  });

  it("per-projection norms under another model_type are not BitNet-embedding evidence", async () => {
    const fixture = await generateCheckpoint({ family: "qwen3-bitnet-embedding", dir: join(root, "norms-llama"), dims: { layers: 1 } });
    const config = JSON.parse(await readFile(join(fixture.dir, "config.json"), "utf8"));
    await writeFile(join(fixture.dir, "config.json"), JSON.stringify({ ...config, model_type: "llama", architectures: ["LlamaForCausalLM"] }));
    expect((await inspectCheckpoint(fixture.dir)).family.id).toBe("generic");
  });

  it("a layer missing one projection norm is an error naming it", async () => {
    const fixture = await generateCheckpoint({ family: "gemma3-bitnet-embedding", dir: join(root, "missing-norm"), dims: { layers: 1 } });
    await dropTensor(fixture.dir, "model.layers.0.mlp.up_proj.norm.weight");
    const report = await inspectCheckpoint(fixture.dir);
    expect(report.diagnostics).toEqual(expect.arrayContaining([expect.objectContaining({ code: "E_TENSOR_MISSING", tensor: "model.layers.0.mlp.up_proj.norm.weight" })]));
  });
});

describe("fake-quantized Qwen3 (Ternary-Bonsai) and MiniCPM4 (BitCPM4)", () => {
  it("MiniCPM4 with per-row stored scales: fake-quantized, every linear extracted, TQ and Q2_0 eligible", async () => {
    const fixture = await generateCheckpoint({ family: "minicpm4-fake-quantized", dir: join(root, "bitcpm4"), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(report.family).toMatchObject({ id: "fake-quantized", semantics: "stored", semanticsSource: "values" });
    expect(report.family.evidence.join()).toContain("architecture MiniCPMForCausalLM");
    const linears = report.tensors.filter((t) => t.role === "ternary-linear");
    expect(linears).toHaveLength(7);
    for (const t of linears) {
      expect(t).toMatchObject({ action: "extract", semantics: "stored" });
      for (const layout of ["tq1_0", "tq2_0", "q2_0"] as const) expect(t.layouts![layout].eligible, `${t.name} ${layout}`).toBe(true);
      expect(t.layouts!.i2_s.eligible).toBe(false);
    }
    // tied head: no lm_head; the embedding is float in BitCPM4
    expect(report.tensors.find((t) => t.role === "embedding")).toMatchObject({ action: "keep" });
    expect(report.tensors.some((t) => t.role === "lm-head")).toBe(false);
  });

  it("a plain Qwen3 whose linears are exactly ternary x scale but has no projection norms is fake-quantized, not an embedding model", async () => {
    const fixture = await generateCheckpoint({ family: "qwen3-fake-quantized", dir: join(root, "bonsai"), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(report.family.id).toBe("fake-quantized");
    expect(report.tensors.find((t) => t.name === "model.layers.0.self_attn.q_norm.weight")).toMatchObject({ role: "norm", ggufName: "blk.0.attn_q_norm.weight" });
  });
});

describe("refused checkpoints: what the files are, and why b158 will not convert them (E_FORMAT_REFUSED)", () => {
  it.each([
    ["PrismML 1-bit, quant_method prism", { family: "prism-1bit" as const }, ['quantization_config.quant_method "prism"', "binary 1-bit", "not ternary"]],
    ["PrismML 1-bit, MLX's legacy quantization: {bits: 1}", { family: "prism-1bit" as const, affineConfig: "mlx" as const }, ["quantization: {bits: 1, group_size: 128}", "binary 1-bit", "uint32 words of 1-bit codes"]],
    ["MLX affine 2-bit, ternary values", { family: "mlx-2bit" as const }, ["MLX affine 2-bit", "bias = -scale", "the values are ternary", "*-unpacked"]],
    ["MLX affine 2-bit, four levels", { family: "mlx-2bit" as const, mlxTernary: false }, ["MLX affine 2-bit", "is not ternary", "four levels are not ternary"]],
  ])("%s", async (name, options, words) => {
    const fixture = await generateCheckpoint({ ...options, dir: join(root, name.replace(/\W+/g, "-")), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(getValidator("inspect")(report)).toBe(true);
    const errors = report.diagnostics.filter((d) => d.severity === "error");
    // one refusal, not one complaint per packed tensor
    expect(errors.map((d) => d.code)).toEqual(["E_FORMAT_REFUSED"]);
    for (const word of words) expect(errors[0]!.message).toContain(word);
    const error = await expectB158Error(convertCheckpoint(fixture.dir, { layout: "q2_0", output: join(root, "refused.b158"), threads: 0 }), "E_FORMAT_REFUSED");
    for (const word of words) expect(error.message).toContain(word);
    expect(error.exitCode).toBe(7);
    await expectB158Error(loadModel(fixture.dir), "E_FORMAT_REFUSED");
  });
});

/** Rewrites a fixture's model.safetensors without one tensor. */
async function dropTensor(dir: string, name: string): Promise<void> {
  const checkpoint = await openCheckpoint(await localCheckpointFiles(dir));
  const kept = [];
  try {
    for (const t of checkpoint.tensors) {
      if (t.name === name) continue;
      kept.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: await readTensorBytes(await checkpoint.source(t.shard), t) });
    }
  } finally {
    await checkpoint.close();
  }
  await writeSafetensorsFile(join(dir, "model.safetensors"), kept, { metadata: { format: "pt" }, sort: true });
}

describe("the fixtures' tokenizers have the real repos' shapes", () => {
  const tokenizerOf = async (family: FixtureFamily) => {
    const fixture = await generateCheckpoint({ family, dir: join(root, `tok-${family}`), dims: { layers: 1 } });
    const json = JSON.parse(await readFile(join(fixture.dir, "tokenizer.json"), "utf8"));
    const config = await readFile(join(fixture.dir, "tokenizer_config.json"), "utf8");
    return { fixture, json, tokenizer: loadTokenizer({ tokenizerJson: JSON.stringify(json), tokenizerConfig: config }, family)! };
  };

  it("Qwen3: NFC, Qwen2's split regex then byte-level, the added tokens right after the merges, unused embedding rows; the embedding model's tokenizer appends <|endoftext|>", async () => {
    for (const family of ["qwen3-fake-quantized", "qwen3-bitnet-embedding"] as const) {
      const { fixture, json, tokenizer } = await tokenizerOf(family);
      expect(json.normalizer).toEqual({ type: "NFC" });
      expect(json.pre_tokenizer.pretokenizers.map((p: { type: string }) => p.type)).toEqual(["Split", "ByteLevel"]);
      expect(json.pre_tokenizer.pretokenizers[0].pattern.Regex).toContain("\\p{N}|");
      const added = json.added_tokens as { id: number; content: string }[];
      expect(added.slice(0, 3).map((t) => t.content)).toEqual(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
      expect(added[0]!.id).toBe(Object.keys(json.model.vocab).length);
      expect(added.at(-1)!.id).toBeLessThan(fixture.config.vocab_size as number);
      const ids = tokenizer.encode("Hello world");
      expect(tokenizer.decode(ids)).toBe("Hello world");
      if (family === "qwen3-bitnet-embedding") expect(ids.at(-1)).toBe(added[0]!.id);
      else expect(ids).toEqual(tokenizer.encode("Hello world", { addSpecialTokens: false }));
    }
  });

  it("Gemma3: specials first (<pad> 0, <eos> 1, <bos> 2, <unk> 3), the 256 byte tokens (<0x09> spelled \\t), '▁' for spaces, byte fallback, <bos> prepended", async () => {
    const { json, tokenizer } = await tokenizerOf("gemma3-bitnet-embedding");
    const vocab = json.model.vocab as Record<string, number>;
    expect(["<pad>", "<eos>", "<bos>", "<unk>"].map((t) => vocab[t])).toEqual([0, 1, 2, 3]);
    expect(vocab["\t"]).toBe(vocab["<0x08>"]! + 1);
    expect(vocab["<0xFF>"]).toBe(vocab["<0x00>"]! + 255);
    expect(json.normalizer).toEqual({ type: "Replace", pattern: { String: " " }, content: "▁" });
    expect(json.model).toMatchObject({ type: "BPE", byte_fallback: true, fuse_unk: true, unk_token: "<unk>" });
    const ids = tokenizer.encode("The café");
    expect(ids[0]).toBe(2);
    // "é" is not in the tiny vocabulary: its two UTF-8 bytes
    expect(ids.slice(-2)).toEqual([vocab["<0xC3>"], vocab["<0xA9>"]]);
    expect(tokenizer.decode(ids)).toBe("The café");
  });

  it("MiniCPM4: a SentencePiece tokenizer.model and 8 added tokens after it, as MiniCPM's 73440 + 8", async () => {
    const fixture = await generateCheckpoint({ family: "minicpm4-fake-quantized", dir: join(root, "tok-minicpm"), dims: { layers: 1 } });
    const config = JSON.parse(await readFile(join(fixture.dir, "tokenizer_config.json"), "utf8"));
    const vocab = fixture.config.vocab_size as number;
    expect(config.added_tokens_decoder[String(vocab - 8)].content).toBe("<|im_end|>");
    expect(fixture.config.eos_token_id).toEqual([2, vocab - 8]);
    expect(fixture.files).toContain("tokenizer.model");
  });
});
