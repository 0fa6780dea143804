import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { openB158File } from "../src/formats/b158/read.js";
import type { LayoutId } from "../src/pack/layouts.js";
import { evaluate } from "../src/runtime/eval.js";
import type { KernelContext } from "../src/runtime/kernels/api.js";
import { createReferenceKernels } from "../src/runtime/kernels/index.js";
import { loadModel } from "../src/runtime/model.js";
import { getValidator } from "../src/schemas.js";
import { TOOL } from "../src/version.js";
import { compareLogits } from "./support/llama-runtime.js";
import { b158Weights, lastTokenEmbedding, referenceForward } from "./support/reference-forward.js";
import { rewriteB158, scaleI2sTensor } from "./support/rewrite-b158.js";
import { runtimeLogits } from "./support/runtime-logits.js";

/**
 * The runtime on the 2026 families, held to the independent float64 reference
 * (test/support/reference-forward.ts), and `b158 eval` of every family x layout that can hold
 * them, with broken conversions it must reject. Qwen3 and MiniCPM are also held to real llama.cpp
 * in gguf-families.spec.ts; Gemma3 and the per-projection norms only run in bitnet.cpp's fork, so
 * the reference is their judge here.
 */
let root: string;
const sources = new Map<FixtureFamily, string>();
const FAMILIES: { family: FixtureFamily; layout: LayoutId; activations: "int8" | "float" }[] = [
  // BitNet-embedding: BitLinear quantizes every projection's input to int8
  { family: "qwen3-bitnet-embedding", layout: "i2_s", activations: "int8" },
  { family: "gemma3-bitnet-embedding", layout: "i2_s", activations: "int8" },
  // fake-quantized: plain nn.Linear, float input
  { family: "qwen3-fake-quantized", layout: "q2_0", activations: "float" },
  { family: "minicpm4-fake-quantized", layout: "tq2_0", activations: "float" },
];
/** 12 tokens: more than the Gemma3 fixture's sliding window (6), in every fixture vocabulary (384). */
const PROMPT = [138, 171, 287, 283, 7, 231, 63, 147, 12, 300, 44, 90];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-runtime-families-"));
  for (const { family } of FAMILIES) sources.set(family, (await generateCheckpoint({ family, dir: join(root, family), seed: 7 })).dir);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function convert(family: FixtureFamily, layout: LayoutId): Promise<string> {
  const output = join(root, `${family}-${layout}.b158`);
  await convertCheckpoint(sources.get(family)!, { layout, output, threads: 0, force: true });
  return output;
}

async function reference(path: string, tokens: readonly number[], activations: "int8" | "float", config?: (c: Record<string, unknown>) => Record<string, unknown>) {
  const file = await openB158File(path);
  try {
    const weights = b158Weights(file);
    return await referenceForward(config === undefined ? weights : { ...weights, config: config({ ...weights.config }) }, tokens, { activations });
  } finally {
    await file.close();
  }
}

/** The largest |runtime - reference| relative to |reference| at any position: catches a uniform logit scale, which cosine and argmax cannot. */
function relativeError(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  let worst = 0;
  for (let p = 0; p < a.length; p++) {
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < a[p]!.length; i++) {
      diff += (a[p]![i]! - b[p]![i]!) ** 2;
      norm += b[p]![i]! ** 2;
    }
    worst = Math.max(worst, Math.sqrt(diff / norm));
  }
  return worst;
}

describe.each(FAMILIES)("$family ($layout, $activations activations) against the float64 reference", ({ family, layout, activations }) => {
  it("the .b158 and the checkpoint: cosine >= 0.9999, the same argmax and logits within 1e-4 at every position", async () => {
    const path = await convert(family, layout);
    const expected = (await reference(path, PROMPT, activations)).logits;
    for (const model of [path, sources.get(family)!]) {
      const got = await runtimeLogits(model, PROMPT, { activations });
      const agreement = compareLogits(got, expected);
      expect(agreement.minCosine, model).toBeGreaterThanOrEqual(0.9999);
      expect(agreement.argmaxMismatches, model).toBe(0);
      expect(relativeError(got, expected), model).toBeLessThan(1e-4);
    }
  });
});

describe("each architecture's features are computed, and the comparison can tell when they are not", () => {
  it("Gemma3: the sliding window, query_pre_attn_scalar and GELU-tanh change the logits, and the runtime follows each", async () => {
    const path = await convert("gemma3-bitnet-embedding", "i2_s");
    const runtime = await runtimeLogits(path, PROMPT, { activations: "float" });
    // the reference without the window (every layer global): the window mattered for 12 tokens
    const global = (await reference(path, PROMPT, "float", (c) => ({ ...c, sliding_window: null }))).logits;
    expect(compareLogits(runtime, global).minCosine).toBeLessThan(0.999);
    // another attention scale: the runtime on a file with that config follows it
    const scaled = join(root, "gemma-scalar.b158");
    await rewriteB158(path, scaled, { config: (c) => ({ ...c, query_pre_attn_scalar: 32 }) });
    const scaledReference = (await reference(scaled, PROMPT, "float")).logits;
    expect(compareLogits(runtime, scaledReference).minCosine).toBeLessThan(0.9999);
    expect(compareLogits(await runtimeLogits(scaled, PROMPT, { activations: "float" }), scaledReference).minCosine).toBeGreaterThanOrEqual(0.9999);
    // SiLU instead of GELU-tanh
    const silu = compareLogits(await runtimeLogits(path, PROMPT, { activations: "float", activation: "silu" }), (await reference(path, PROMPT, "float")).logits);
    expect(silu.minCosine).toBeLessThan(0.999);
  });

  it("MiniCPM: the logit divisor (hidden / dim_model_base) and the LongRoPE factors are applied", async () => {
    const path = await convert("minicpm4-fake-quantized", "tq2_0");
    const runtime = await runtimeLogits(path, PROMPT, { activations: "float" });
    // a uniform logit scale leaves cosine and argmax alone: the relative error sees it
    const unscaled = (await reference(path, PROMPT, "float", (c) => ({ ...c, dim_model_base: c.hidden_size }))).logits;
    expect(compareLogits(runtime, unscaled).minCosine).toBeGreaterThan(0.9999);
    expect(relativeError(runtime, unscaled)).toBeGreaterThan(0.5);
    const noLongRope = (await reference(path, PROMPT, "float", (c) => ({ ...c, rope_scaling: null }))).logits;
    expect(relativeError(runtime, noLongRope)).toBeGreaterThan(1e-3);
  });

  it("fake-quantized models run plain linears: int8 mode computes what float mode does (no activation quantization)", async () => {
    const path = await convert("minicpm4-fake-quantized", "q2_0");
    expect(await runtimeLogits(path, PROMPT)).toEqual(await runtimeLogits(path, PROMPT, { activations: "float" }));
    // a BitNet-embedding model's BitLinears do quantize
    const embedding = await convert("qwen3-bitnet-embedding", "i2_s");
    expect(compareLogits(await runtimeLogits(embedding, PROMPT), await runtimeLogits(embedding, PROMPT, { activations: "float" })).minCosine).toBeLessThan(0.99999);
  });

  it("a ternary embedding and head (Ternary-Bonsai) stay ternary: the head is a ternary kernel matrix, no float vocabulary matrix is made", async () => {
    const path = await convert("qwen3-fake-quantized", "q2_0");
    const kinds: string[] = [];
    const kernels = createReferenceKernels();
    const spy: KernelContext = { ...kernels, ternary: (s) => (kinds.push(`ternary ${s.rows}x${s.cols}`), kernels.ternary(s)), dense: (s) => (kinds.push(`dense ${s.rows}x${s.cols}`), kernels.dense(s)), linear: kernels.linear, denseLinear: kernels.denseLinear, denseRow: kernels.denseRow, close: kernels.close, backend: kernels.backend, threads: kernels.threads, bytes: 0 };
    const model = await loadModel(path, { kernels: spy });
    await model.close();
    expect(kinds.filter((k) => k.startsWith("dense"))).toEqual([]);
    expect(kinds.filter((k) => k === "ternary 384x256")).toHaveLength(1); // the untied head
    expect(kinds).toHaveLength(2 * 7 + 1);
  });
});

describe("embedding models: the pooled, L2-normalized last-token hidden state", () => {
  it.each(["qwen3-bitnet-embedding", "gemma3-bitnet-embedding"] as const)("%s: the runtime's embedding equals the reference's, and only an embedding model embeds", async (family) => {
    const path = await convert(family, "i2_s");
    const model = await loadModel(path);
    try {
      expect(model.spec.pooling).toEqual({ mode: "last", normalize: true });
      const ours = await model.embed(PROMPT);
      const theirs = lastTokenEmbedding((await reference(path, PROMPT, "int8")).hidden);
      let dot = 0;
      for (let i = 0; i < ours.length; i++) dot += ours[i]! * theirs[i]!;
      expect(dot).toBeGreaterThan(0.99999);
      expect(Math.hypot(...ours)).toBeCloseTo(1, 6);
    } finally {
      await model.close();
    }
    const lm = await loadModel(await convert("minicpm4-fake-quantized", "q2_0"));
    await expect(lm.embed(PROMPT)).rejects.toMatchObject({ code: "E_USAGE" });
    await lm.close();
  });
});

describe("eval of every new family x layout that holds it", () => {
  const CASES: { family: FixtureFamily; layouts: LayoutId[] }[] = [
    { family: "qwen3-bitnet-embedding", layouts: ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0", "q2_0"] },
    { family: "gemma3-bitnet-embedding", layouts: ["i2_s", "tl1", "tq2_0", "q2_0"] },
    // g128 stored scales: only q2_0 holds them
    { family: "qwen3-fake-quantized", layouts: ["q2_0"] },
    // per-row stored scales: TQ (K a multiple of 256) and q2_0
    { family: "minicpm4-fake-quantized", layouts: ["tq1_0", "tq2_0", "q2_0"] },
  ];
  it.each(CASES.flatMap(({ family, layouts }) => layouts.map((layout) => ({ family, layout }))))("$family -> $layout passes the default thresholds", async ({ family, layout }) => {
    const report = await evaluate(sources.get(family)!, await convert(family, layout));
    expect(getValidator("eval")({ schemaVersion: 1, tool: TOOL, ...report })).toBe(true);
    expect(report.pass).toBe(true);
    const c = report.comparisons[0]!;
    if (family.endsWith("embedding")) {
      // the pooled embeddings of the text and of each sentence decide; the logits are reported
      expect(report.embeddings!.texts.length).toBeGreaterThan(2);
      expect(c.checks.filter((k) => k.enforced).map((k) => k.metric)).toEqual(["minEmbeddingCosine"]);
      expect(c.embeddings!.minCosine).toBeGreaterThan(layout === "i2_s" || layout.startsWith("tl") ? 0.9999999 : 0.9995);
    } else {
      expect(report.embeddings).toBeNull();
      expect(c.checks.every((k) => k.enforced && k.metric !== "minEmbeddingCosine")).toBe(true);
    }
  });

  it("breaks it must reject: an embedding model's down_proj scale 1.5x, its activation swapped; MiniCPM's logit scale", async () => {
    const embedding = await convert("qwen3-bitnet-embedding", "i2_s");
    const scaled = join(root, "embedding-scaled.b158");
    await scaleI2sTensor(embedding, scaled, "layers.0.mlp.down_proj.weight", 1.5);
    const scaledReport = await evaluate(sources.get("qwen3-bitnet-embedding")!, scaled);
    expect(scaledReport.pass).toBe(false);
    expect(scaledReport.comparisons[0]!.checks.find((k) => k.metric === "minEmbeddingCosine")!.pass).toBe(false);

    const gemma = await convert("gemma3-bitnet-embedding", "i2_s");
    const silu = join(root, "gemma-silu.b158");
    await rewriteB158(gemma, silu, { config: (c) => ({ ...c, hidden_activation: "silu" }) });
    expect((await evaluate(sources.get("gemma3-bitnet-embedding")!, silu)).pass).toBe(false);

    const minicpm = await convert("minicpm4-fake-quantized", "q2_0");
    const logits = join(root, "minicpm-logit-scale.b158");
    await rewriteB158(minicpm, logits, { config: (c) => ({ ...c, dim_model_base: c.hidden_size }) });
    const report = await evaluate(sources.get("minicpm4-fake-quantized")!, logits);
    expect(report.pass).toBe(false);
    // cosine and top-1 cannot see a uniform logit scale; KL and perplexity do
    const checks = report.comparisons[0]!.checks;
    expect(checks.find((k) => k.metric === "minCosine")!.pass).toBe(true);
    expect(checks.find((k) => k.metric === "maxKl")!.pass || checks.find((k) => k.metric === "maxPerplexityDelta")!.pass).toBe(false);
  });
});
