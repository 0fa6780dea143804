import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf as parseWithHuggingFace } from "@huggingface/gguf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily, type FixtureResult } from "../fixtures/generate.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { localCheckpointFiles } from "../src/checkpoint/local.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { convertCheckpointToGguf } from "../src/export/convert-gguf.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { openGgufFile, type GgufFile } from "../src/formats/gguf/read.js";
import { GgufWriter } from "../src/formats/gguf/write.js";
import { readTensorBytes } from "../src/formats/safetensors/read.js";
import { fromBf16Bits, fromF16Bits, toF16Bits } from "../src/pack/float16.js";
import type { LayoutId } from "../src/pack/layouts.js";
import { ggufCompat } from "../src/report/gguf-compat.js";
import { validateGgufReport } from "../src/report/gguf-report.js";
import { evaluate } from "../src/runtime/eval.js";
import { loadModel } from "../src/runtime/model.js";
import { expectB158Error } from "./support/expect-error.js";
import { compareLogits, llamaLogits, runtime } from "./support/llama-runtime.js";
import { b158Weights, ggufWeights, lastTokenEmbedding, referenceForward, referenceLogits } from "./support/reference-forward.js";
import { runtimeLogits } from "./support/runtime-logits.js";

/**
 * GGUFs of the 2026 families. Ternary-Bonsai (arch qwen3) and BitCPM4 (arch minicpm) in real
 * llama.cpp (v0.5.0, which has both architectures and Q2_0): each ternary file agrees with an F32
 * file of the same weights, which agrees with the independent float64 forward pass of the checkpoint
 * (logits, argmax and scale), and the runtime agrees with llama.cpp. BitNet-embedding files are for
 * bitnet.cpp's fork, which no test here can run: they are held to what its converter writes (keys,
 * order, tensors, types, F16 norms, Gemma3's w + 1, I2_S bytes from its algorithm), read back by
 * the independent reference (which must embed as the checkpoint does) and by the runtime, and their
 * vocabularies are loaded by llama.cpp itself (vocabulary only: its qwen3 / gemma3 refuse the
 * *_norm_in tensors, the reason mainline targets are refused).
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-gguf-families-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Each prompt's F32 top two logits are >= 1% of the range apart at every position (asserted below). */
const LLAMA_CASES: { family: FixtureFamily; architecture: string; layouts: LayoutId[]; prompt: number[] }[] = [
  { family: "qwen3-fake-quantized", architecture: "qwen3", layouts: ["q2_0"], prompt: [121, 194, 329, 128, 220, 255, 342, 50] },
  { family: "minicpm4-fake-quantized", architecture: "minicpm", layouts: ["tq2_0", "tq1_0", "q2_0"], prompt: [309, 143, 23, 112, 131, 349, 186, 316] },
];

function smallestTopTwoGap(rows: readonly Float64Array[]): number {
  return Math.min(...rows.map((row) => {
    const sorted = Float64Array.from(row).sort().reverse();
    return (sorted[0]! - sorted[1]!) / (sorted[0]! - sorted.at(-1)!);
  }));
}

/** The largest |a - b| / |b| over positions: a uniform logit scale shows here, never in cosine or argmax. */
function relativeError(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  let worst = 0;
  for (let p = 0; p < a.length; p++) {
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < b[p]!.length; i++) {
      diff += (a[p]![i]! - b[p]![i]!) ** 2;
      norm += b[p]![i]! ** 2;
    }
    worst = Math.max(worst, Math.sqrt(diff / norm));
  }
  return worst;
}

/** Copies a GGUF, changing some metadata values and, per tensor, its bytes. */
async function rewriteGguf(input: string, output: string, change: { kv?: (key: string, value: unknown) => unknown; bytes?: (type: string, bytes: Uint8Array) => Uint8Array }): Promise<void> {
  const source = await openGgufFile(input);
  try {
    const kvs = source.kvs.map((kv) => (change.kv === undefined || kv.value.type === "array" ? kv : { key: kv.key, value: { ...kv.value, value: change.kv(kv.key, kv.value.value) } })) as typeof source.kvs;
    const writer = await GgufWriter.create(output, kvs, source.tensors);
    for (const t of source.tensors) await writer.writeTensor(change.bytes === undefined ? await source.readTensor(t.name) : change.bytes(t.type.name, (await source.readTensor(t.name)).slice()));
    await writer.commit();
  } finally {
    await source.close();
  }
}

describe.each(LLAMA_CASES)("$family -> arch $architecture in llama.cpp", ({ family, architecture, layouts, prompt }) => {
  const paths: Record<string, string> = {};
  let fixture: FixtureResult;
  let reference: Float64Array[];
  let f32: Float64Array[];

  beforeAll(async () => {
    fixture = await generateCheckpoint({ family, dir: join(root, family), seed: 7 });
    for (const layout of layouts) {
      paths[`${layout}.b158`] = join(root, `${family}-${layout}.b158`);
      await convertCheckpoint(fixture.dir, { layout, output: paths[`${layout}.b158`]!, threads: 0 });
      const file = await openB158File(paths[`${layout}.b158`]!);
      try {
        paths[layout] = join(root, `${family}-${layout}.gguf`);
        await exportGguf(file, { output: paths[layout]! });
        if (layout === layouts[0]) {
          paths.f32 = join(root, `${family}-f32.gguf`);
          await exportGguf(file, { output: paths.f32, weights: "f32", embeddings: "f32" });
          reference = await referenceLogits(file, prompt);
        }
      } finally {
        await file.close();
      }
    }
    f32 = await llamaLogits(paths.f32!, prompt);
  });

  it("writes the llama.cpp architecture, its keys and tensors, and b158's keys", async () => {
    const file = await openGgufFile(paths[layouts[0]!]!);
    await file.close();
    expect(file.scalar("general.architecture")).toBe(architecture);
    expect(file.scalar("b158.target")).toBe("llama.cpp");
    expect(file.scalar("b158.activation_quantization")).toBe("none");
    expect(ggufCompat(file).runtimes.find((r) => r.id === "llama.cpp")!.loads).toBe(true);
    const names = file.tensors.map((t) => t.name);
    if (architecture === "qwen3") {
      expect(file.scalar("tokenizer.ggml.pre")).toBe("qwen2");
      expect(names).toEqual(expect.arrayContaining(["blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight", "output.weight"]));
      // Ternary-Bonsai's embedding and head are ternary, and stay so
      expect(file.tensors.filter((t) => t.type.name === "Q2_0").map((t) => t.name)).toEqual(expect.arrayContaining(["token_embd.weight", "output.weight"]));
    } else {
      expect(file.scalar("minicpm.embedding_scale")).toBe(12);
      expect(file.scalar("minicpm.residual_scale")).toBeCloseTo(1.4 / Math.sqrt(2), 6);
      expect(file.scalar("minicpm.logit_scale")).toBe(4);
      expect(file.scalar("minicpm.rope.scaling.type")).toBe("longrope");
      expect(names.slice(0, 2)).toEqual(["rope_factors_long.weight", "rope_factors_short.weight"]);
      expect(names).not.toContain("output.weight"); // tied: llama.cpp falls back to token_embd
      expect(file.scalar("tokenizer.ggml.model")).toBe("llama");
    }
    const theirs = await parseWithHuggingFace(paths[layouts[0]!]!, { allowLocalFile: true });
    expect(theirs.tensorInfos.map((t) => t.name)).toEqual(names);
    expect(theirs.tensorInfos.map((t) => t.dtype)).toEqual(file.tensors.map((t) => t.type.id));
  });

  it("validate checks the architecture's tensors: the files pass, one without a q/k norm or with a stray tensor does not", async () => {
    for (const layout of layouts) {
      const report = await validateGgufReport(paths[layout]!);
      expect(report.diagnostics.filter((d) => d.severity === "error"), layout).toEqual([]);
      expect(report.diagnostics.map((d) => d.code)).not.toContain("I_GGUF_ARCH_UNCHECKED");
    }
    const missing = architecture === "qwen3" ? "blk.1.attn_k_norm.weight" : "blk.1.ffn_norm.weight";
    const dropped = join(root, `${family}-dropped.gguf`);
    const source = await openGgufFile(paths.f32!);
    try {
      const kept = source.tensors.filter((t) => t.name !== missing);
      const writer = await GgufWriter.create(dropped, source.kvs, kept);
      for (const t of kept) await writer.writeTensor(await source.readTensor(t.name));
      await writer.commit();
    } finally {
      await source.close();
    }
    expect((await validateGgufReport(dropped)).diagnostics).toEqual(expect.arrayContaining([expect.objectContaining({ code: "E_GGUF_MISSING_TENSOR", tensor: missing })]));
  });

  it("the prompt is unambiguous, and the F32 GGUF matches the independent forward pass (logits within 1e-3)", () => {
    expect(smallestTopTwoGap(f32)).toBeGreaterThanOrEqual(0.01);
    const agreement = compareLogits(f32, reference);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(agreement.argmaxMismatches).toBe(0);
    expect(relativeError(f32, reference)).toBeLessThan(1e-3);
  });

  it.each(layouts)("%s logits agree with the F32 GGUF's", async (layout) => {
    const agreement = compareLogits(await llamaLogits(paths[layout]!, prompt), f32);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("the runtime agrees with llama.cpp on the .b158, the F32 GGUF and the ternary GGUF", async () => {
    for (const path of [paths[`${layouts[0]}.b158`]!, paths.f32!, paths[layouts[0]!]!]) {
      const got = await runtimeLogits(path, prompt);
      const agreement = compareLogits(got, f32);
      expect(agreement.minCosine, path).toBeGreaterThanOrEqual(0.9999);
      expect(agreement.argmaxMismatches, path).toBe(0);
      expect(relativeError(got, f32), path).toBeLessThan(1e-3);
    }
  });

  it("tokenizes text as llama.cpp does", async () => {
    const theirs = await (await runtime()).loadModel({ modelPath: paths[layouts[0]!]! });
    const ours = await loadModel(paths[`${layouts[0]}.b158`]!);
    try {
      for (const text of ["The quick brown fox jumps over the lazy dog.", "  two  spaces, and émoji 😀!\nnew line 2560"]) {
        expect(ours.requireTokenizer().encode(text, { addSpecialTokens: false })).toEqual(theirs.tokenize(text, false).map(Number));
      }
    } finally {
      await theirs.dispose();
      await ours.close();
    }
  });

  it("the checks can fail: codes reversed in each byte, or (minicpm) another logit_scale", async () => {
    const reversed = join(root, `${family}-reversed.gguf`);
    await rewriteGguf(paths.q2_0!, reversed, {
      bytes: (type, bytes) => {
        if (type !== "Q2_0") return bytes;
        for (let at = 0; at < bytes.byteLength; at += 18) for (let m = at + 2; m < at + 18; m++) {
          const b = bytes[m]!;
          bytes[m] = ((b & 3) << 6) | ((b & 0x0c) << 2) | ((b & 0x30) >> 2) | (b >> 6);
        }
        return bytes;
      },
    });
    const broken = compareLogits(await llamaLogits(reversed, prompt), f32);
    expect(broken.minCosine < 0.999 || broken.argmaxMismatches > 0).toBe(true);
    if (architecture === "minicpm") {
      const scaled = join(root, `${family}-logit-scale.gguf`);
      await rewriteGguf(paths.f32!, scaled, { kv: (key, value) => (key === "minicpm.logit_scale" ? 1 : value) });
      expect(relativeError(await llamaLogits(scaled, prompt), reference)).toBeGreaterThan(0.5);
    }
  });

  it("Q2_0 bytes equal llama.cpp's definition applied to the checkpoint's values (d = f16(scale) first, code t + 1 at bits 2 (j % 4))", async () => {
    const name = family === "qwen3-fake-quantized" ? "model.embed_tokens.weight" : "model.layers.0.mlp.down_proj.weight";
    const gguf = family === "qwen3-fake-quantized" ? "token_embd.weight" : "blk.0.ffn_down.weight";
    const checkpoint = await openCheckpoint(await localCheckpointFiles(fixture.dir));
    let values: Float32Array;
    try {
      const t = checkpoint.tensorsByName.get(name)!;
      const bits = new Uint16Array((await readTensorBytes(await checkpoint.source(t.shard), t)).slice().buffer);
      values = Float32Array.from(bits, (b) => (t.dtype === "BF16" ? fromBf16Bits(b) : fromF16Bits(b)));
    } finally {
      await checkpoint.close();
    }
    const expected = new Uint8Array((values.length / 64) * 18);
    for (let block = 0; block < values.length / 64; block++) {
      const x = values.subarray(block * 64, (block + 1) * 64);
      const d = Math.max(...Array.from(x, Math.abs));
      new DataView(expected.buffer).setUint16(block * 18, toF16Bits(d), true);
      for (let j = 0; j < 64; j++) expected[block * 18 + 2 + (j >> 2)]! |= (d === 0 ? 1 : Math.round(x[j]! / d) + 1) << (2 * (j % 4));
    }
    const file = await openGgufFile(paths.q2_0!);
    try {
      expect(Buffer.compare(Buffer.from(await file.readTensor(gguf)), Buffer.from(expected))).toBe(0);
    } finally {
      await file.close();
    }
  });
});

/** The converter's keys, in its order, after general.architecture and general.name (utils/convert-bitnet-embedding-to-gguf.py). */
const EMBEDDING_KEYS = (a: string) => [
  "general.architecture",
  "general.name",
  `${a}.block_count`,
  `${a}.context_length`,
  `${a}.embedding_length`,
  `${a}.feed_forward_length`,
  `${a}.attention.head_count`,
  `${a}.attention.head_count_kv`,
  `${a}.vocab_size`,
  `${a}.rope.dimension_count`,
  `${a}.attention.key_length`,
  `${a}.attention.value_length`,
  `${a}.rope.freq_base`,
  `${a}.attention.layer_norm_rms_epsilon`,
  "general.file_type",
  `${a}.pooling_type`,
];

const EMBEDDING_CASES = [
  { family: "qwen3-bitnet-embedding" as const, architecture: "qwen3", prefix: "", perLayer: 18 },
  { family: "gemma3-bitnet-embedding" as const, architecture: "gemma3", prefix: "model.", perLayer: 20 },
];
/** At most the Gemma3 fixture's sliding window (6): bitnet.cpp's converter writes no window, so its graph attends globally. */
const EMBED_TOKENS = [5, 60, 70, 80, 90, 100];

describe.each(EMBEDDING_CASES)("BitNet-embedding $family -> bitnet.cpp's arch $architecture, as its converter writes it", ({ family, architecture, prefix, perLayer }) => {
  let fixture: FixtureResult;
  let b158: string;
  let path: string;
  let file: GgufFile;
  let warnings: string[];

  beforeAll(async () => {
    fixture = await generateCheckpoint({ family, dir: join(root, family), seed: 7 });
    b158 = join(root, `${family}.b158`);
    await convertCheckpoint(fixture.dir, { layout: "i2_s", output: b158, threads: 0 });
    path = join(root, `${family}.gguf`);
    const source = await openB158File(b158);
    warnings = (await exportGguf(source, { output: path }).finally(() => source.close())).diagnostics.map((d) => d.code);
    file = await openGgufFile(path);
  });
  afterAll(async () => {
    await file.close();
  });

  it("validate takes it as bitnet.cpp's architecture: every tensor known, mainline named as unable to load it", async () => {
    const report = await validateGgufReport(path);
    expect(report.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });

  it("its keys in its order, then the tokenizer's and b158's; its hyperparameters; the 2024-2025 ids (I2_S 36, file type 40)", () => {
    const keys = file.kvs.map((kv) => kv.key);
    expect(keys.slice(0, 16)).toEqual(EMBEDDING_KEYS(architecture));
    expect(keys.slice(16).every((k) => k.startsWith("tokenizer.") || k.startsWith("b158."))).toBe(true);
    const c = fixture.config as Record<string, number>;
    expect(file.scalar(`${architecture}.attention.key_length`)).toBe(c.head_dim);
    expect(file.scalar(`${architecture}.attention.value_length`)).toBe(c.head_dim);
    expect(file.scalar(`${architecture}.rope.dimension_count`)).toBe(c.head_dim);
    expect(file.scalar(`${architecture}.vocab_size`)).toBe(c.vocab_size);
    expect(file.scalar(`${architecture}.pooling_type`)).toBe(3); // modules.json -> 1_Pooling: lasttoken
    expect(file.scalar("general.file_type")).toBe(40);
    expect(file.scalar("b158.target")).toBe("bitnet.cpp-2024");
    expect(file.scalar("b158.activation_quantization")).toBe("int8-per-token");
    expect(file.metadata.has(`${architecture}.hidden_activation`)).toBe(false);
  });

  it("its tensors in its order, I2_S projections, every norm and the embedding F16, no output", async () => {
    const layers = fixture.config.num_hidden_layers as number;
    expect(file.tensors).toHaveLength(perLayer * layers + 2);
    expect(file.tensors.map((t) => t.name)).not.toContain("output.weight");
    for (const t of file.tensors) expect(t.type.name, t.name).toBe(/_norm(_in)?\.weight$/.test(t.name) || t.name === "token_embd.weight" ? "F16" : "I2_S");
    expect(file.tensors.filter((t) => t.name.endsWith("_norm_in.weight"))).toHaveLength(7 * layers);
    // the converter iterates the safetensors' names sorted as strings ("layers.10" before "layers.2")
    const source = await openB158File(b158);
    await source.close();
    const ggufOf = new Map(source.tensors.map((t) => [t.name, t.gguf_name]));
    const expected = fixture.tensors.map((t) => t.name).sort().map((n) => ggufOf.get(n));
    expect(file.tensors.map((t) => t.name)).toEqual(expected);
  });

  it("norms as written: Gemma3's own as f16(w + 1), BitLinear's *_norm_in as f16(w)", async () => {
    const checkpoint = await openCheckpoint(await localCheckpointFiles(fixture.dir));
    try {
      const pairs: [string, string, number][] = [
        [`${prefix}layers.0.input_layernorm.weight`, "blk.0.attn_norm.weight", architecture === "gemma3" ? 1 : 0],
        [`${prefix}layers.0.self_attn.k_norm.weight`, "blk.0.attn_k_norm.weight", architecture === "gemma3" ? 1 : 0],
        [`${prefix}layers.0.mlp.down_proj.norm.weight`, "blk.0.ffn_down_norm_in.weight", 0],
        [`${prefix}norm.weight`, "output_norm.weight", architecture === "gemma3" ? 1 : 0],
      ];
      if (architecture === "gemma3") pairs.push([`${prefix}layers.0.post_feedforward_layernorm.weight`, "blk.0.post_ffw_norm.weight", 1]);
      for (const [hf, gguf, offset] of pairs) {
        const t = checkpoint.tensorsByName.get(hf)!;
        const bits = new Uint16Array((await readTensorBytes(await checkpoint.source(t.shard), t)).slice().buffer);
        const expected = Uint16Array.from(bits, (b) => toF16Bits(fromBf16Bits(b) + offset));
        expect(new Uint16Array((await file.readTensor(gguf)).slice().buffer), gguf).toEqual(expected);
      }
    } finally {
      await checkpoint.close();
    }
  });

  it("I2_S bytes: the converter's codes and layout from the checkpoint's latent weights (scale: its mean|w|, to float32 rounding)", async () => {
    const checkpoint = await openCheckpoint(await localCheckpointFiles(fixture.dir));
    try {
      for (const [hf, gguf] of [[`${prefix}layers.1.self_attn.q_proj.weight`, "blk.1.attn_q.weight"], [`${prefix}layers.0.mlp.down_proj.weight`, "blk.0.ffn_down.weight"]] as const) {
        const t = checkpoint.tensorsByName.get(hf)!;
        const w = Float64Array.from(new Uint16Array((await readTensorBytes(await checkpoint.source(t.shard), t)).slice().buffer), fromBf16Bits);
        // quantize_to_i2_s: scale = mean|w| (>= 1e-5), q = round(w / scale) clamped, code q + 1; byte = c0<<6 | c1<<4 | c2<<2 | c3 over elements g, g+32, g+64, g+96
        const mean = Math.max(w.reduce((s, v) => s + Math.abs(v), 0) / w.length, 1e-5);
        const codes = Array.from(w, (v) => Math.max(-1, Math.min(1, Math.round(v / mean))) + 1);
        const expected = new Uint8Array(w.length / 4);
        for (let block = 0; block < w.length / 128; block++) for (let g = 0; g < 32; g++) {
          const c = (j: number) => codes[block * 128 + j * 32 + g]!;
          expected[block * 32 + g] = (c(0) << 6) | (c(1) << 4) | (c(2) << 2) | c(3);
        }
        const bytes = await file.readTensor(gguf);
        expect(Buffer.compare(Buffer.from(bytes.subarray(0, w.length / 4)), Buffer.from(expected)), gguf).toBe(0);
        const scale = new DataView(bytes.buffer, bytes.byteOffset + w.length / 4, 4).getFloat32(0, true);
        expect(Math.abs(scale / mean - 1)).toBeLessThan(1e-6);
        expect(bytes.subarray(w.length / 4 + 4).every((b) => b === 0)).toBe(true);
      }
    } finally {
      await checkpoint.close();
    }
  });

  it("the independent reference reading the GGUF embeds as it does reading the .b158 (Hugging Face semantics); so does the runtime", async () => {
    const source = await openB158File(b158);
    const weights = b158Weights(source);
    // Gemma3: the file carries no sliding window nor local rope base (the converter writes neither): what it computes is Gemma3 without them
    const asWritten = architecture === "gemma3" ? { ...weights, config: { ...weights.config, sliding_window: null } } : weights;
    const expected = lastTokenEmbedding((await referenceForward(asWritten, EMBED_TOKENS, { activations: "int8" })).hidden);
    const hf = lastTokenEmbedding((await referenceForward(weights, EMBED_TOKENS, { activations: "int8" })).hidden);
    await source.close();
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i]!, 0);
    const fromGguf = lastTokenEmbedding((await referenceForward(ggufWeights(file), EMBED_TOKENS, { activations: "int8" })).hidden);
    // F16 norms are exact for Qwen3's (around 1 in bf16); Gemma3's f16(1 + w) rounds to 2^-11
    expect(dot(fromGguf, expected)).toBeGreaterThan(architecture === "qwen3" ? 0.99999 : 0.999);
    const model = await loadModel(path);
    expect(dot(await model.embed(EMBED_TOKENS), fromGguf)).toBeGreaterThan(0.99999);
    await model.close();
    if (architecture === "qwen3") {
      expect(warnings).not.toContain("W_GGUF_GEMMA3_WINDOW");
      expect((await evaluate(fixture.dir, path, { tokens: EMBED_TOKENS })).pass).toBe(true);
    } else {
      // the fixture's sliding layers rotate with another base: the file computes another function, and export says so
      expect(warnings).toContain("W_GGUF_GEMMA3_WINDOW");
      expect(dot(expected, hf)).toBeLessThan(0.999);
    }
  });

  it("llama.cpp builds the same vocabulary (its vocabulary-only load: its graph cannot take *_norm_in)", async () => {
    // the GGUF's metadata without tensors: llama.cpp reads its vocabulary and nothing else
    const probe = join(root, `${family}-vocab.gguf`);
    const writer = await GgufWriter.create(probe, file.kvs, []);
    await writer.commit();
    const theirs = await (await runtime()).loadModel({ modelPath: probe, vocabOnly: true });
    const ours = await loadModel(fixture.dir);
    try {
      for (const text of ["The quick brown fox jumps over the lazy dog.", "  two  spaces, and émoji 😀!\nnew line"]) {
        expect(ours.requireTokenizer().encode(text, { addSpecialTokens: false })).toEqual(theirs.tokenize(text, false).map(Number));
      }
      const specials = ours.requireTokenizer().encode("hi");
      if (architecture === "qwen3") {
        // the tokenizer appends <|endoftext|>: the EOS llama.cpp appends too
        expect(file.scalar("tokenizer.ggml.model")).toBe("gpt2");
        expect(file.scalar("tokenizer.ggml.pre")).toBe("qwen2");
        expect(theirs.tokens.shouldAppendEosToken).toBe(true);
        expect(theirs.tokens.shouldPrependBosToken).toBe(false);
        expect(Number(theirs.tokens.eos)).toBe(specials.at(-1));
      } else {
        expect(file.scalar("tokenizer.ggml.model")).toBe("llama");
        expect(file.scalar("tokenizer.ggml.add_space_prefix")).toBe(false);
        expect(theirs.tokens.shouldPrependBosToken).toBe(true);
        expect(Number(theirs.tokens.bos)).toBe(specials[0]);
      }
    } finally {
      await theirs.dispose();
      await ours.close();
    }
  });

  it("mainline llama.cpp cannot load it, and mainline targets are refused before any conversion", async () => {
    expect(ggufCompat(file).runtimes.find((r) => r.id === "llama.cpp")!.loads).toBe(false);
    const dir = await mkdtemp(join(root, "refused-"));
    // even with float weights whose types mainline has, its qwen3 / gemma3 cannot take the *_norm_in tensors
    const b = await openB158File(b158);
    const f16 = join(dir, "f16.gguf");
    await exportGguf(b, { output: f16, weights: "f16", target: "bitnet.cpp-2024" }).finally(() => b.close());
    const floats = await openGgufFile(f16);
    const mainline = ggufCompat(floats).runtimes.find((r) => r.id === "llama.cpp")!;
    await floats.close();
    expect(mainline.loads).toBe(false);
    expect(mainline.reason).toContain("_norm_in");
    const error = await expectB158Error(convertCheckpointToGguf(fixture.dir, { layout: "tq2_0", output: join(dir, "model.gguf"), threads: 0 }), "E_GGUF_EXPORT");
    expect(error.message).toMatch(/RMSNorm is not linear/);
    expect(await readdir(dir)).toEqual(["f16.gguf"]);
    const q2 = join(root, `${family}-q2_0.b158`);
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output: q2, threads: 0 });
    const source = await openB158File(q2);
    await expectB158Error(exportGguf(source, { output: join(dir, "q2.gguf") }), "E_GGUF_EXPORT").finally(() => source.close());
    // the 2026 fork's numbering: I2_S is file type 41 there
    const again = await openB158File(b158);
    const summary = await exportGguf(again, { output: join(dir, "2026.gguf"), target: "bitnet.cpp-2026" }).finally(() => again.close());
    expect(summary.fileType).toBe(41);
  });
});
