import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, generateExample, type FixtureFamily } from "../fixtures/generate.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { localCheckpointFiles } from "../src/checkpoint/local.js";
import { readTensorBytes } from "../src/formats/safetensors/read.js";
import { decodeSentencePieceModel } from "../src/formats/sentencepiece/read.js";
import { PIECE_TYPE } from "../src/formats/sentencepiece/model.js";
import { fromBf16Bits } from "../src/pack/float16.js";
import { unpackHfPacked } from "../src/pack/hf-packed.js";

const committedExample = fileURLToPath(new URL("../fixtures/example/", import.meta.url));
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-fixtures-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("fixtures", () => {
  it("the committed example is exactly what the generator writes (npm run fixtures is reproducible)", async () => {
    const dir = join(root, "example");
    const result = await generateExample(dir);
    const committed = (await readdir(committedExample)).sort();
    expect(result.files).toEqual(committed);
    for (const name of committed) {
      expect(Buffer.compare(await readFile(join(dir, name)), await readFile(join(committedExample, name))), name).toBe(0);
    }
    const size = (await Promise.all(committed.map((n) => readFile(join(committedExample, n))))).reduce((s, b) => s + b.byteLength, 0);
    expect(size).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  const families: FixtureFamily[] = ["bitnet-1bitllm", "bitnet-2b4t-bf16", "bitnet-2b4t-packed", "llama-bitnet-packed", "llama-generic"];
  it.each(families)("%s: config vocab equals the embedding rows and every tokenizer file is there", async (family) => {
    const dir = join(root, `f-${family}`);
    const result = await generateCheckpoint({ family, dir });
    const embed = result.tensors.find((t) => t.name === "model.embed_tokens.weight")!;
    expect(embed.shape[0]).toBe(result.config.vocab_size);
    expect(result.files).toContain("config.json");
    expect(result.files).toContain("tokenizer_config.json");
    expect(result.files).toContain(family === "bitnet-1bitllm" ? "tokenizer.model" : "tokenizer.json");
    if (family !== "bitnet-1bitllm") {
      const tokenizer = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"));
      const ids = [...Object.values(tokenizer.model.vocab as Record<string, number>), ...tokenizer.added_tokens.map((t: { id: number }) => t.id)].sort((a, b) => a - b);
      expect(ids).toEqual(Array.from({ length: result.config.vocab_size as number }, (_, i) => i));
    }
  });

  it("generation is deterministic: two runs give byte-identical files", async () => {
    const a = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "det-a"), shards: 2, seed: 9 });
    const b = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "det-b"), shards: 2, seed: 9 });
    expect(a.files).toEqual(b.files);
    for (const name of a.files) expect(Buffer.compare(await readFile(join(a.dir, name)), await readFile(join(b.dir, name))), name).toBe(0);
  });

  it("packed fixtures unpack to the recorded codes, and weight_scale follows the family's convention", async () => {
    for (const family of ["bitnet-2b4t-packed", "llama-bitnet-packed"] as const) {
      const result = await generateCheckpoint({ family, dir: join(root, `packed-${family}`), dims: { layers: 1 } });
      const checkpoint = await openCheckpoint(await localCheckpointFiles(result.dir));
      try {
        for (const [name, { codes, scale }] of Object.entries(result.ternary)) {
          const tensor = checkpoint.tensorsByName.get(name)!;
          const bytes = await readTensorBytes(await checkpoint.source(tensor.shard), tensor);
          const [rows, cols] = tensor.shape as [number, number];
          expect(unpackHfPacked(bytes, rows, cols)).toEqual(codes);
          const scaleTensor = checkpoint.tensorsByName.get(name.replace(/\.weight$/, ".weight_scale"))!;
          const raw = await readTensorBytes(await checkpoint.source(scaleTensor.shard), scaleTensor);
          const stored = fromBf16Bits(raw[0]! | (raw[1]! << 8));
          expect(family === "bitnet-2b4t-packed" ? stored : 1 / stored).toBe(scale);
        }
      } finally {
        await checkpoint.close();
      }
    }
  });

  it("ternary latent fixtures hold exactly code x scale", async () => {
    const result = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "tern"), weights: "ternary", dims: { layers: 1 } });
    const checkpoint = await openCheckpoint(await localCheckpointFiles(result.dir));
    try {
      const [name, { codes, scale }] = Object.entries(result.ternary)[0]!;
      const tensor = checkpoint.tensorsByName.get(name)!;
      const bytes = await readTensorBytes(await checkpoint.source(tensor.shard), tensor);
      const values = Array.from({ length: codes.length }, (_, i) => fromBf16Bits(bytes[2 * i]! | (bytes[2 * i + 1]! << 8)));
      expect(values).toEqual(Array.from(codes, (c) => c * scale + 0));
      expect(Object.keys(result.ternary)).toHaveLength(7);
    } finally {
      await checkpoint.close();
    }
  });

  it("the SentencePiece tokenizer.model round-trips through the strict reader", async () => {
    const result = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "spm") });
    const model = decodeSentencePieceModel(new Uint8Array(await readFile(join(result.dir, "tokenizer.model"))));
    expect(model.pieces).toHaveLength((result.config.vocab_size as number) - 2);
    expect(model.pieces.slice(0, 3).map((p) => p.type)).toEqual([PIECE_TYPE.UNKNOWN, PIECE_TYPE.CONTROL, PIECE_TYPE.CONTROL]);
    expect(model.pieces[3]).toEqual({ piece: "<0x00>", score: 0, type: PIECE_TYPE.BYTE });
    expect(model.trainer).toMatchObject({ byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 });
    expect(new Set(model.pieces.map((p) => p.piece)).size).toBe(model.pieces.length);
  });
});
