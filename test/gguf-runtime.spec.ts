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

/**
 * Mainline Q2_0 (ggml 42, general.file_type 41) in the bundled llama.cpp v0.5.0, which has it: a
 * 1bitLLM-style model whose K (320, 640) TQ cannot hold, and a fake-quantized Llama with one scale
 * per 64 weights (Q/K permuted with their group scales) whose embedding and head are ternary too,
 * written in Q2_0 as well. Each agrees with an F32 GGUF of the same weights, which agrees with an
 * independent forward pass of the checkpoint; the same bytes with the codes of each byte in reverse
 * order fail the check.
 */
const Q2_0_CASES = [
  {
    name: "bitnet-1bitllm, K = 320 and 640",
    architecture: "bitnet",
    fixture: { family: "bitnet-1bitllm" as const, weights: "ternary" as const, seed: 7, dims: { hidden: 320, intermediate: 640, heads: 4, kvHeads: 4 } },
    prompt: [118, 96, 212, 32, 147, 185, 267, 167],
  },
  {
    name: "llama-fake-quantized, g64, ternary embedding and head",
    architecture: "llama",
    fixture: { family: "llama-fake-quantized" as const, seed: 7, granularity: 64 as const, ternaryHeads: true },
    prompt: [225, 312, 343, 63, 101, 199, 148, 180],
  },
];

describe.each(Q2_0_CASES)("q2_0: $name -> arch $architecture in llama.cpp", ({ name, architecture, fixture, prompt: PROMPT }) => {
  const paths: Record<string, string> = {};
  let reference: Float64Array[];
  let f32: Float64Array[];

  beforeAll(async () => {
    const slug = name.replace(/[^a-z0-9]+/gi, "-");
    const dir = join(root, slug);
    await generateCheckpoint({ ...fixture, dir });
    const b158 = join(root, `${slug}.b158`);
    await convertCheckpoint(dir, { layout: "q2_0", output: b158, threads: 0 });
    const file = await openB158File(b158);
    try {
      paths.q2_0 = join(root, `${slug}-q2_0.gguf`);
      await exportGguf(file, { output: paths.q2_0 });
      paths.f32 = join(root, `${slug}-f32.gguf`);
      await exportGguf(file, { output: paths.f32, weights: "f32", embeddings: "f32" });
      reference = await referenceLogits(file, PROMPT);
    } finally {
      await file.close();
    }
    f32 = await llamaLogits(paths.f32, PROMPT);
  });

  it("writes ggml type 42 and general.file_type 41 (mainline MOSTLY_Q2_0)", async () => {
    const file = await openGgufFile(paths.q2_0!);
    await file.close();
    expect(file.scalar("general.architecture")).toBe(architecture);
    expect(file.scalar("general.file_type")).toBe(41);
    const q2 = file.tensors.filter((t) => t.type.id === 42).map((t) => t.name);
    expect(q2).toContain("blk.0.ffn_down.weight");
    if (architecture === "llama") expect(q2).toEqual(expect.arrayContaining(["token_embd.weight", "output.weight"]));
    const theirs = await parseWithHuggingFace(paths.q2_0!, { allowLocalFile: true });
    expect(theirs.tensorInfos.map((t) => t.dtype)).toEqual(file.tensors.map((t) => t.type.id));
  });

  it("the prompt is unambiguous, and the F32 GGUF matches an independent forward pass", () => {
    expect(smallestTopTwoGap(f32)).toBeGreaterThanOrEqual(0.01);
    const agreement = compareLogits(f32, reference);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.9999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("q2_0 logits agree with the F32 GGUF", async () => {
    const agreement = compareLogits(await llamaLogits(paths.q2_0!, PROMPT), f32);
    expect(agreement.minCosine).toBeGreaterThanOrEqual(0.999);
    expect(agreement.argmaxMismatches).toBe(0);
  });

  it("the same file with each byte's four codes in reverse order fails the check", async () => {
    const broken = join(root, `${name.replace(/[^a-z0-9]+/gi, "-")}-reversed.gguf`);
    const source = await openGgufFile(paths.q2_0!);
    try {
      const writer = await GgufWriter.create(broken, source.kvs, source.tensors);
      for (const t of source.tensors) {
        const bytes = (await source.readTensor(t.name)).slice();
        if (t.type.id === 42) {
          for (let at = 0; at < bytes.byteLength; at += 18) {
            for (let m = at + 2; m < at + 18; m++) {
              const b = bytes[m]!;
              bytes[m] = ((b & 3) << 6) | ((b & 0x0c) << 2) | ((b & 0x30) >> 2) | (b >> 6);
            }
          }
        }
        await writer.writeTensor(bytes);
      }
      await writer.commit();
    } finally {
      await source.close();
    }
    const agreement = compareLogits(await llamaLogits(broken, PROMPT), f32);
    expect(agreement.minCosine < 0.999 || agreement.argmaxMismatches > 0).toBe(true);
  });
});
