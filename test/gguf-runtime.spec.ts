import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf as parseWithHuggingFace } from "@huggingface/gguf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { openGgufFile } from "../src/formats/gguf/read.js";
import { GgufWriter } from "../src/formats/gguf/write.js";
import { unpackLayout } from "../src/pack/codec.js";
import { compareLogits, llamaLogits } from "./support/llama-runtime.js";
import { referenceLogits } from "./support/reference-forward.js";

/**
 * The proof that our GGUFs compute what the checkpoint means, in real llama.cpp (issue #6):
 * TQ1_0 / TQ2_0 files agree with an F32 file of the same ternary weights (cosine >= 0.999 and the
 * same argmax at every position; the residue is llama.cpp's Q8_K activations), the F32 file agrees
 * with an independent float64 forward pass of the checkpoint, and a mis-ordered layout fails.
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-gguf-runtime-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Random tiny models have flat logits, so near-ties are common. Each prompt was picked so that the
 * F32 reference's top two logits are at least 1% of the logit range apart at every position (a
 * precondition the tests assert): "same argmax everywhere" is then a real check, not a coin toss.
 */
const CASES: { family: FixtureFamily; architecture: string; prompt: number[] }[] = [
  { family: "bitnet-2b4t-packed", architecture: "bitnet", prompt: [151, 151, 291, 135, 195, 35, 7, 187] },
  { family: "bitnet-1bitllm", architecture: "bitnet", prompt: [138, 171, 287, 283, 7, 231, 63, 147] },
  { family: "llama-bitnet-packed", architecture: "llama", prompt: [138, 171, 287, 283, 7, 231, 63, 147] },
];

describe.each(CASES)("$family -> arch $architecture in llama.cpp", ({ family, architecture, prompt: PROMPT }) => {
  const paths: Record<string, string> = {};
  let reference: Float64Array[];
  let f32: Float64Array[];

  beforeAll(async () => {
    const dir = join(root, family);
    await generateCheckpoint({ family, dir, seed: 7 });
    for (const layout of ["tq2_0", "tq1_0"] as const) {
      const b158 = join(root, `${family}-${layout}.b158`);
      await convertCheckpoint(dir, { layout, output: b158, threads: 0 });
      const file = await openB158File(b158);
      try {
        paths[layout] = join(root, `${family}-${layout}.gguf`);
        await exportGguf(file, { output: paths[layout] });
        if (layout === "tq2_0") {
          for (const embeddings of ["q8_0", "bf16"] as const) {
            paths[`tq2_0-${embeddings}`] = join(root, `${family}-tq2_0-${embeddings}.gguf`);
            await exportGguf(file, { output: paths[`tq2_0-${embeddings}`]!, embeddings });
          }
          paths.f32 = join(root, `${family}-f32.gguf`);
          await exportGguf(file, { output: paths.f32, weights: "f32", embeddings: "f32" });
          reference = await referenceLogits(file, PROMPT);
        }
      } finally {
        await file.close();
      }
    }
    f32 = await llamaLogits(paths.f32!, PROMPT);
  });

  it("writes the expected architecture", async () => {
    const file = await openGgufFile(paths.tq2_0!);
    await file.close();
    expect(file.scalar("general.architecture")).toBe(architecture);
    // keys llama.cpp does not know, which every test below loads it with: it ignores them
    expect(file.scalar("b158.target")).toBe("llama.cpp");
    expect(typeof file.scalar(`${architecture}.hidden_activation`)).toBe("string");
  });

  it("the prompt is unambiguous: the F32 reference's top two logits are >= 1% of the range apart", () => {
    expect(smallestTopTwoGap(f32)).toBeGreaterThanOrEqual(0.01);
  });

  it("the F32 GGUF matches an independent forward pass of the checkpoint", () => {
    const agreement = compareLogits(f32, reference);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it.each(["tq2_0", "tq1_0", "tq2_0-q8_0", "tq2_0-bf16"])("%s logits agree with the F32 GGUF", async (layout) => {
    const agreement = compareLogits(await llamaLogits(paths[layout]!, PROMPT), f32);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("a TQ2_0 file with a mis-ordered layout fails the same check", async () => {
    const broken = join(root, `${family}-misordered.gguf`);
    await writeMisordered(paths.tq2_0!, broken);
    const agreement = compareLogits(await llamaLogits(broken, PROMPT), f32);
    expect(agreement.minCosine < 0.999 || agreement.argmaxMismatches > 0).toBe(true);
  });

  it("parses with @huggingface/gguf", async () => {
    for (const path of [paths.tq2_0!, paths.tq1_0!, paths.f32!]) {
      const ours = await openGgufFile(path);
      await ours.close();
      const theirs = await parseWithHuggingFace(path, { allowLocalFile: true });
      expect(theirs.metadata["general.architecture"]).toBe(architecture);
      expect(theirs.tensorInfos.map((t) => t.name)).toEqual(ours.tensors.map((t) => t.name));
      expect(theirs.tensorInfos.map((t) => Number(t.offset))).toEqual(ours.tensors.map((t) => t.offset));
      expect(theirs.tensorInfos.map((t) => t.dtype)).toEqual(ours.tensors.map((t) => t.type.id));
    }
  });
});

function smallestTopTwoGap(rows: readonly Float64Array[]): number {
  return Math.min(
    ...rows.map((row) => {
      const sorted = Float64Array.from(row).sort().reverse();
      return (sorted[0]! - sorted[1]!) / (sorted[0]! - sorted.at(-1)!);
    }),
  );
}

/**
 * Copies a GGUF, re-packing every TQ2_0 block in plain sequential order (4 codes per byte, in
 * element order) instead of ggml's interleaved one: every byte count and scale stays valid, only
 * the element order is wrong, as a naive packer would write it.
 */
async function writeMisordered(input: string, output: string): Promise<void> {
  const source = await openGgufFile(input);
  try {
    const writer = await GgufWriter.create(output, source.kvs, source.tensors);
    for (const t of source.tensors) {
      const bytes = await source.readTensor(t.name);
      if (t.type.name !== "TQ2_0") {
        await writer.writeTensor(bytes);
        continue;
      }
      const [K, M] = [t.ne[0]!, t.ne[1]!];
      const { codes } = unpackLayout({ layout: "tq2_0", blockSize: 256 }, bytes, [M, K]);
      const wrong = new Uint8Array(bytes);
      for (let block = 0; block < (M * K) / 256; block++) {
        const at = block * 66;
        wrong.fill(0, at, at + 64);
        for (let e = 0; e < 256; e++) wrong[at + (e >> 2)]! |= (codes[block * 256 + e]! + 1) << (2 * (e & 3));
      }
      await writer.writeTensor(wrong);
    }
    await writer.commit();
  } finally {
    await source.close();
  }
}
