import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { LAYOUT_IDS, type LayoutId } from "../src/pack/layouts.js";
import { evaluate } from "../src/runtime/eval.js";
import { createReferenceKernels } from "../src/runtime/kernels/index.js";
import type { KernelContext, TernaryWeightSource } from "../src/runtime/kernels/api.js";
import { loadModel } from "../src/runtime/model.js";
import { TextStream } from "../src/runtime/tokenizer.js";
import { expectB158Error } from "./support/expect-error.js";
import { compareLogits } from "./support/llama-runtime.js";
import { referenceLogits } from "./support/reference-forward.js";
import { rewriteB158, scaleI2sTensor } from "./support/rewrite-b158.js";
import { runtimeLogits } from "./support/runtime-logits.js";

/**
 * The runtime (src/runtime) on fixture models of every family: its graph against the independent
 * float64 reference (relu2 for 2B-4T included; the SiLU families are also held to llama.cpp in
 * runtime-llama.spec.ts), its invariants (batching, generation, bounded context), where weights go,
 * and `eval` of every family x layout conversion, with the deliberately broken conversions it
 * must reject. Tiny models, reference kernels: every figure here is exact arithmetic, not speed.
 */
let root: string;
const sources = new Map<FixtureFamily, string>();
const FAMILIES: FixtureFamily[] = ["bitnet-1bitllm", "bitnet-2b4t-bf16", "bitnet-2b4t-packed", "llama-bitnet-packed"];
/** In every fixture vocabulary (320 and 384 tokens). */
const PROMPT = [138, 171, 287, 283, 7, 231, 63, 147];
const EVAL_TOKENS = [1, 138, 171, 287, 283, 7, 231, 63, 147, 12, 300, 44];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-runtime-"));
  for (const family of FAMILIES) sources.set(family, (await generateCheckpoint({ family, dir: join(root, family), seed: 7 })).dir);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function convert(family: FixtureFamily, layout: LayoutId, extra: { fallback?: "f16" } = {}): Promise<string> {
  const output = join(root, `${family}-${layout}${extra.fallback ? "-fallback" : ""}.b158`);
  await convertCheckpoint(sources.get(family)!, { layout, output, threads: 0, force: true, ...extra });
  return output;
}

describe.each([
  { family: "bitnet-2b4t-packed" as const, activation: "relu2" as const },
  { family: "bitnet-2b4t-bf16" as const, activation: "relu2" as const },
  { family: "bitnet-1bitllm" as const, activation: "silu" as const },
  { family: "llama-bitnet-packed" as const, activation: "silu" as const },
])("$family ($activation) against the float64 reference", ({ family, activation }) => {
  it.each(["float", "int8"] as const)("%s activations: cosine >= 0.9999 and the same argmax at every position", async (activations) => {
    const path = await convert(family, "i2_s");
    const file = await openB158File(path);
    const reference = await referenceLogits(file, PROMPT, { activation, activations }).finally(() => file.close());
    const agreement = compareLogits(await runtimeLogits(path, PROMPT, { activations }), reference);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("the other activation fails the same check (the test can tell SiLU from relu2)", async () => {
    const path = await convert(family, "i2_s");
    const file = await openB158File(path);
    const reference = await referenceLogits(file, PROMPT, { activation }).finally(() => file.close());
    const swapped = compareLogits(await runtimeLogits(path, PROMPT, { activations: "float", activation: activation === "relu2" ? "silu" : "relu2" }), reference);
    expect(swapped.minCosine).toBeLessThan(0.99);
  });
});

describe("the forward pass", () => {
  it("gives the same logits whatever the batch size, and generation continues them token by token", async () => {
    const path = await convert("bitnet-2b4t-packed", "tq2_0");
    const batched = await runtimeLogits(path, PROMPT, { maxBatch: 32 });
    expect(await runtimeLogits(path, PROMPT, { maxBatch: 1 })).toEqual(batched);
    expect(await runtimeLogits(path, PROMPT, { maxBatch: 3 })).toEqual(batched);
    // greedy generation through the KV cache picks, at each step, the argmax of a fresh forward pass
    const model = await loadModel(path);
    try {
      const generation = model.generate(PROMPT, { maxTokens: 6, stopAtEos: false });
      for await (const _ of generation);
      const tokens = generation.stats!.tokens;
      expect(tokens).toHaveLength(6);
      const all = [...PROMPT, ...tokens];
      const logits = await model.forward(all);
      const V = model.spec.vocabSize;
      for (let i = 0; i < tokens.length; i++) {
        const row = logits.subarray((PROMPT.length - 1 + i) * V, (PROMPT.length + i) * V);
        expect(row.indexOf(Math.max(...row))).toBe(tokens[i]);
      }
    } finally {
      await model.close();
    }
  });

  it("holds exactly the context it was asked for, and refuses tokens outside the vocabulary", async () => {
    const model = await loadModel(await convert("bitnet-2b4t-packed", "i2_s"), { contextLength: 4 });
    try {
      expect(model.contextLength).toBe(4);
      await model.forward([1, 2, 3, 4]);
      await expectB158Error(model.forward([1, 2, 3, 4, 5]), "E_CONTEXT_FULL");
      await expectB158Error(model.forward([1, 384]), "E_USAGE");
      await expectB158Error(async () => {
        for await (const _ of model.generate([1, 2, 3], { maxTokens: 2 }));
      }, "E_CONTEXT_FULL");
    } finally {
      await model.close();
    }
  });

  it("hands I2_S and TQ2_0 payloads to the kernels as stored, 16-bit latent weights as absmean thresholds, others as codes", async () => {
    const seen: TernaryWeightSource["kind"][] = [];
    const spy = (): KernelContext => {
      const kernels = createReferenceKernels();
      return { ...kernels, ternary: (source) => (seen.push(source.kind), kernels.ternary(source)), linear: kernels.linear, denseLinear: kernels.denseLinear, denseRow: kernels.denseRow, dense: kernels.dense, close: kernels.close, backend: kernels.backend, threads: kernels.threads, bytes: 0 };
    };
    const kinds = async (path: string) => {
      seen.length = 0;
      const model = await loadModel(path, { kernels: spy() });
      await model.close();
      return [...new Set(seen)];
    };
    expect(await kinds(await convert("bitnet-2b4t-packed", "i2_s"))).toEqual(["i2_s"]);
    expect(await kinds(await convert("bitnet-2b4t-packed", "tq2_0"))).toEqual(["tq2_0"]);
    expect(await kinds(await convert("bitnet-2b4t-packed", "tl2"))).toEqual(["codes"]);
    expect(await kinds(sources.get("bitnet-2b4t-packed")!)).toEqual(["codes"]);
    expect(seen).toHaveLength(2 * 7);
    expect(await kinds(sources.get("bitnet-2b4t-bf16")!)).toEqual(["threshold16"]);
  });
});

describe("tokenizers from the file", () => {
  it("tokenizer.json (@huggingface/tokenizers) adds BOS and decodes back; streamed pieces add up to the text", async () => {
    const model = await loadModel(await convert("bitnet-2b4t-packed", "i2_s"));
    try {
      const tokenizer = model.requireTokenizer();
      expect(tokenizer.kind).toBe("tokenizer.json");
      const ids = tokenizer.encode("The quick brown fox.");
      expect(ids[0]).toBe(model.spec.bosTokenId);
      expect(tokenizer.decode(ids)).toBe("The quick brown fox.");
      const stream = new TextStream(tokenizer, ids.slice(0, 3));
      const pieces = ids.slice(3).map((id) => stream.push(id)).join("") + stream.flush();
      expect(tokenizer.decode(ids.slice(0, 3)) + pieces).toBe("The quick brown fox.");
    } finally {
      await model.close();
    }
  });

  it("a streamed run of special tokens (skipped by decode) keeps every decode short", async () => {
    const model = await loadModel(await convert("bitnet-2b4t-packed", "i2_s"));
    try {
      const tokenizer = model.requireTokenizer();
      const ids = tokenizer.encode("The quick brown fox.");
      const special = model.spec.bosTokenId!;
      let longest = 0;
      const counting = Object.assign(Object.create(tokenizer) as typeof tokenizer, {
        decode: (window: readonly number[], options?: { readonly skipSpecialTokens?: boolean }) => {
          longest = Math.max(longest, window.length);
          return tokenizer.decode(window, options);
        },
      });
      const stream = new TextStream(counting, ids.slice(0, 3));
      let pieces = "";
      for (const id of ids.slice(3)) {
        pieces += stream.push(id);
        for (let i = 0; i < 200; i++) pieces += stream.push(special);
      }
      pieces += stream.flush();
      expect(tokenizer.decode(ids.slice(0, 3)) + pieces).toBe("The quick brown fox.");
      // a window holds the anchor, the text not yet shown and the new token, never the specials
      expect(longest).toBeLessThanOrEqual(4);
    } finally {
      await model.close();
    }
  });

  it("tokenizer.model (b158's SentencePiece encoder) adds BOS 1 and decodes back", async () => {
    const model = await loadModel(await convert("bitnet-1bitllm", "i2_s"));
    try {
      const tokenizer = model.requireTokenizer();
      expect(tokenizer.kind).toBe("tokenizer.model");
      const ids = tokenizer.encode("bitnet is a model");
      expect(ids[0]).toBe(1);
      expect(tokenizer.decode(ids)).toBe("bitnet is a model");
    } finally {
      await model.close();
    }
  });
});

describe("eval of every family x layout conversion", () => {
  it.each(FAMILIES.flatMap((family) => LAYOUT_IDS.map((layout) => ({ family, layout }))))("$family -> $layout passes the default thresholds", async ({ family, layout }) => {
    const report = await evaluate(sources.get(family)!, await convert(family, layout), { tokens: EVAL_TOKENS });
    expect(report.lossy).toBe(false);
    const [c] = report.comparisons;
    expect(c!.checks.every((k) => k.enforced)).toBe(true);
    expect(report.pass).toBe(true);
    // lossless layouts (an f32 scale) compute exactly what the source does; TQ's f16 d nearly
    if (layout === "i2_s" || layout === "tl1" || layout === "tl2") expect(c!.summary.minCosine).toBeCloseTo(1, 12);
    expect(c!.summary.minCosine).toBeGreaterThan(0.9995);
  });

  it("a --fallback f16 conversion (float-stored BitNet linears, int8 activations) passes too", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "3b-like"), seed: 3, dims: { layers: 1, hidden: 320, intermediate: 864, heads: 4, kvHeads: 4 } });
    const output = join(root, "3b-like.b158");
    // every linear falls back here (K 320 and 864 are not multiples of 256): asked for explicitly
    await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, fallback: "f16", allowNoTernary: true });
    const report = await evaluate(fixture.dir, output, { tokens: EVAL_TOKENS });
    expect(report.pass).toBe(true);
  });

  it("a GGUF b158 wrote runs as a third side (arch llama: Q/K rows permuted for NORM rope)", async () => {
    const b158 = await convert("llama-bitnet-packed", "tq2_0");
    const gguf = join(root, "llama-tq2_0.gguf");
    const file = await openB158File(b158);
    await exportGguf(file, { output: gguf, force: true, embeddings: "f32" }).finally(() => file.close());
    const report = await evaluate(sources.get("llama-bitnet-packed")!, b158, { tokens: EVAL_TOKENS, gguf });
    expect(report.comparisons.map((c) => [c.side, c.kind, c.pass])).toEqual([
      ["converted", "b158", true],
      ["gguf", "gguf", true],
    ]);
    expect(report.comparisons[1]!.summary.minCosine).toBeGreaterThan(0.9995);
  });
});

describe("eval catches conversions that structural checks pass", () => {
  it("a wrong scale convention (linear_class flipped before converting) fails", async () => {
    const wrong = join(root, "wrong-convention");
    await cp(sources.get("bitnet-2b4t-packed")!, wrong, { recursive: true });
    const config = JSON.parse(await readFile(join(wrong, "config.json"), "utf8"));
    config.quantization_config.linear_class = "bitlinear"; // divides: scales inverted
    await writeFile(join(wrong, "config.json"), JSON.stringify(config));
    const output = join(root, "wrong-convention.b158");
    await convertCheckpoint(wrong, { layout: "i2_s", output, threads: 0, force: true });
    const report = await evaluate(sources.get("bitnet-2b4t-packed")!, output, { tokens: EVAL_TOKENS });
    expect(report.pass).toBe(false);
    expect(report.comparisons[0]!.summary.minCosine).toBeLessThan(0.9);
  });

  it("a permuted layout (each I2_S block's bytes reversed, hashes valid) fails", async () => {
    const good = await convert("llama-bitnet-packed", "i2_s");
    const output = join(root, "permuted.b158");
    await rewriteB158(good, output, {
      payload: (t, bytes) => {
        if (t.layoutParams === undefined) return bytes;
        const wrong = bytes.slice();
        for (let at = 0; at < wrong.length - 32; at += 32) wrong.subarray(at, at + 32).reverse();
        return wrong;
      },
    });
    const report = await evaluate(sources.get("llama-bitnet-packed")!, output, { tokens: EVAL_TOKENS });
    expect(report.pass).toBe(false);
    expect(report.comparisons[0]!.summary.minCosine).toBeLessThan(0.9);
  });

  it("SiLU where the model needs relu2 (the config's hidden_act swapped) fails", async () => {
    const good = await convert("bitnet-2b4t-bf16", "i2_s");
    const output = join(root, "silu.b158");
    await rewriteB158(good, output, { config: (c) => ({ ...c, hidden_act: "silu" }) });
    const report = await evaluate(sources.get("bitnet-2b4t-bf16")!, output, { tokens: EVAL_TOKENS });
    expect(report.pass).toBe(false);
    expect(report.comparisons[0]!.checks.find((k) => k.metric === "minCosine")!.pass).toBe(false);
  });

  it("a scale 1.5x too large in one tensor fails", async () => {
    const good = await convert("bitnet-2b4t-bf16", "i2_s");
    const output = join(root, "scaled.b158");
    await scaleI2sTensor(good, output, "model.layers.0.mlp.down_proj.weight", 1.5);
    expect((await evaluate(sources.get("bitnet-2b4t-bf16")!, output, { tokens: EVAL_TOKENS })).pass).toBe(false);
  });
});

describe("latent checkpoints whose values are already scale x ternary (online semantics by their config)", () => {
  it("convert and eval both follow the config (absmean per forward); --weights quantized on both reads them as stored", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "exact"), seed: 7, weights: "ternary" });
    const online = join(root, "exact-online.b158");
    await convertCheckpoint(fixture.dir, { layout: "i2_s", output: online, threads: 0 });
    expect((await evaluate(fixture.dir, online, { tokens: EVAL_TOKENS })).comparisons[0]!.summary.minCosine).toBeCloseTo(1, 9);
    const stored = join(root, "exact-stored.b158");
    await convertCheckpoint(fixture.dir, { layout: "i2_s", output: stored, threads: 0, weights: "quantized" });
    // eval reads the source as the .b158 records it was read (--weights quantized): stored
    expect((await evaluate(fixture.dir, stored, { tokens: EVAL_TOKENS })).comparisons[0]!.summary.minCosine).toBeCloseTo(1, 9);
    // the same file against the framework's own reading (absmean per forward): every scale is 1/p too large
    expect((await evaluate(fixture.dir, stored, { tokens: EVAL_TOKENS, latent: "online" })).pass).toBe(false);
  });
});

describe("eval of a lossy conversion (--ternarize of a float model)", () => {
  it("reports without enforcing, unless thresholds are given", async () => {
    const fixture = await generateCheckpoint({ family: "llama-generic", dir: join(root, "generic"), seed: 7 });
    const output = join(root, "generic.b158");
    await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, ternarize: ["model.layers.*_proj.weight"] });
    const report = await evaluate(fixture.dir, output, { tokens: EVAL_TOKENS });
    expect(report.lossy).toBe(true);
    expect(report.pass).toBe(true);
    expect(report.comparisons[0]!.checks.some((k) => k.enforced)).toBe(false);
    expect(report.comparisons[0]!.checks.some((k) => !k.pass)).toBe(true); // ternarizing a float model is lossy
    const enforced = await evaluate(fixture.dir, output, { tokens: EVAL_TOKENS, thresholds: { minCosine: 0.999 } });
    expect(enforced.comparisons[0]!.checks.filter((k) => k.enforced).map((k) => k.metric)).toEqual(["minCosine"]);
    expect(enforced.pass).toBe(false);
  });
});

describe("convert with an eval before publishing", () => {
  it("a miss leaves nothing at the output path; a pass publishes", async () => {
    const dir = await mkdtemp(join(root, "publish-"));
    const output = join(dir, "model.b158");
    const source = sources.get("bitnet-2b4t-packed")!;
    const check = (thresholds: { minCosine: number }) => async (written: string) => {
      const report = await evaluate(source, written, { tokens: EVAL_TOKENS, thresholds });
      if (!report.pass) throw Object.assign(new Error("eval failed"), { report });
    };
    await expect(convertCheckpoint(source, { layout: "i2_s", output, threads: 0, beforePublish: check({ minCosine: 1.5 }) })).rejects.toThrow("eval failed");
    expect(await readdir(dir)).toEqual([]);
    await convertCheckpoint(source, { layout: "i2_s", output, threads: 0, beforePublish: check({ minCosine: 0.999 }) });
    expect(await readdir(dir)).toEqual(["model.b158"]);
  });
});
