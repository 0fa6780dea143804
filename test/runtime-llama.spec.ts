import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { loadModel, type LoadOptions } from "../src/runtime/model.js";
import { compareLogits, llamaLogits, runtime } from "./support/llama-runtime.js";
import { runtimeLogits } from "./support/runtime-logits.js";

/**
 * The runtime against real llama.cpp (node-llama-cpp's v0.5.0 CPU build) on the same weights: its
 * float-activation logits on the .b158, on our F32 GGUF and on our TQ2_0 GGUF agree with llama.cpp's
 * on the F32 GGUF to cosine >= 0.9999 with the same argmax at every position. llama.cpp computes SiLU
 * for arch bitnet, so 2B-4T (relu2) is compared with the runtime told to compute SiLU; its relu2 is
 * proven against the float64 reference in runtime.spec.ts. Arch llama holds Q/K rows permuted for
 * NORM rope: the GGUF runs prove the runtime accounts for it. Both tokenizers agree with llama.cpp's.
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-runtime-llama-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The prompts test/gguf-runtime.spec.ts checked to be unambiguous (top two logits >= 1% of the range apart). */
const CASES: { family: FixtureFamily; architecture: string; prompt: number[]; override?: LoadOptions }[] = [
  { family: "bitnet-1bitllm", architecture: "bitnet", prompt: [138, 171, 287, 283, 7, 231, 63, 147] },
  { family: "llama-bitnet-packed", architecture: "llama", prompt: [138, 171, 287, 283, 7, 231, 63, 147] },
  { family: "bitnet-2b4t-packed", architecture: "bitnet", prompt: [151, 151, 291, 135, 195, 35, 7, 187], override: { activation: "silu" } },
];

describe.each(CASES)("$family (arch $architecture): the runtime agrees with llama.cpp", ({ family, prompt, override }) => {
  const paths: Record<string, string> = {};
  let llama: Float64Array[];

  beforeAll(async () => {
    const dir = join(root, family);
    await generateCheckpoint({ family, dir, seed: 7 });
    paths.b158 = join(root, `${family}.b158`);
    await convertCheckpoint(dir, { layout: "tq2_0", output: paths.b158, threads: 0 });
    const file = await openB158File(paths.b158);
    try {
      paths.f32 = join(root, `${family}-f32.gguf`);
      await exportGguf(file, { output: paths.f32, weights: "f32", embeddings: "f32" });
      paths.tq2_0 = join(root, `${family}-tq2_0.gguf`);
      await exportGguf(file, { output: paths.tq2_0, embeddings: "f32" });
    } finally {
      await file.close();
    }
    llama = await llamaLogits(paths.f32, prompt);
  });

  it.each(["b158", "f32", "tq2_0"])("on the %s file: cosine >= 0.9999 and the same argmax at every position", async (which) => {
    const agreement = compareLogits(await runtimeLogits(paths[which]!, prompt, { activations: "float", ...override }), llama);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("tokenizes text as llama.cpp does", async () => {
    const theirs = await (await runtime()).loadModel({ modelPath: paths.tq2_0! });
    const ours = await loadModel(paths.b158!);
    try {
      for (const text of ["The quick brown fox jumps over the lazy dog.", "  two  spaces, and émoji 😀!\nnew line"]) {
        expect(ours.requireTokenizer().encode(text, { addSpecialTokens: false })).toEqual(theirs.tokenize(text, false).map(Number));
      }
    } finally {
      await theirs.dispose();
      await ours.close();
    }
  });
});

describe("the comparison can fail", () => {
  it("the runtime's own relu2 on 2B-4T is not what llama.cpp computes", async () => {
    const { prompt } = CASES[2]!;
    const dir = join(root, "relu2");
    await generateCheckpoint({ family: "bitnet-2b4t-packed", dir, seed: 7 });
    const b158 = join(root, "relu2.b158");
    await convertCheckpoint(dir, { layout: "tq2_0", output: b158, threads: 0 });
    const f32 = join(root, "relu2-f32.gguf");
    const file = await openB158File(b158);
    await exportGguf(file, { output: f32, weights: "f32", embeddings: "f32" }).finally(() => file.close());
    const agreement = compareLogits(await runtimeLogits(b158, prompt, { activations: "float" }), await llamaLogits(f32, prompt));
    expect(agreement.minCosine).toBeLessThan(0.99);
  });
});
