import { createHash } from "node:crypto";
import { readdir, readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureResult } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { convertCheckpointToGguf } from "../src/export/convert-gguf.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File, type B158File } from "../src/formats/b158/read.js";
import { openGguf, openGgufFile, type GgufFile } from "../src/formats/gguf/read.js";
import { ggmlType, type GgufKv } from "../src/formats/gguf/spec.js";
import { GgufWriter, layoutGguf } from "../src/formats/gguf/write.js";
import { memorySource } from "../src/io/byte-source.js";
import { unpackLayout } from "../src/pack/codec.js";
import { fromF16Bits } from "../src/pack/float16.js";
import type { LayoutId } from "../src/pack/layouts.js";
import { dequantizeQ8_0 } from "../src/pack/q8_0.js";
import { inspectGguf, validateGgufReport } from "../src/report/gguf-report.js";
import { getValidator } from "../src/schemas.js";
import { expectB158Error } from "./support/expect-error.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-gguf-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("GGUF container: writer and reader round trip", () => {
  const metadata: GgufKv[] = [
    { key: "general.architecture", value: { type: "string", value: "llama" } },
    { key: "u8", value: { type: "uint8", value: 255 } },
    { key: "i8", value: { type: "int8", value: -128 } },
    { key: "u16", value: { type: "uint16", value: 65535 } },
    { key: "i16", value: { type: "int16", value: -32768 } },
    { key: "u32", value: { type: "uint32", value: 4294967295 } },
    { key: "i32", value: { type: "int32", value: -2147483648 } },
    { key: "f32", value: { type: "float32", value: 0.5 } },
    { key: "bool", value: { type: "bool", value: true } },
    { key: "u64", value: { type: "uint64", value: 2n ** 63n + 5n } },
    { key: "i64", value: { type: "int64", value: -(2n ** 62n) } },
    { key: "f64", value: { type: "float64", value: Math.PI } },
    { key: "unicode ключ", value: { type: "string", value: "▁hello 🦙" } },
    { key: "strings", value: { type: "array", itemType: "string", value: ["a", "", "ü"] } },
    { key: "ints", value: { type: "array", itemType: "int32", value: [1, -2, 3] } },
    { key: "empty", value: { type: "array", itemType: "float32", value: [] } },
  ];

  it("reads back every value type, the tensors and their bytes, at 32-byte alignment", async () => {
    const tensors = [
      { name: "norm.weight", ne: [7], type: ggmlType("llama.cpp", "F32") },
      { name: "w.weight", ne: [256, 3], type: ggmlType("llama.cpp", "TQ2_0") },
      { name: "scalar", ne: [], type: ggmlType("llama.cpp", "F32") },
    ];
    const payloads = [new Uint8Array(28).fill(1), new Uint8Array(3 * 66).fill(2), new Uint8Array(4).fill(3)];
    const path = join(root, "roundtrip.gguf");
    const writer = await GgufWriter.create(path, metadata, tensors);
    for (const p of payloads) await writer.writeTensor(p);
    await writer.commit();
    const file = await openGgufFile(path);
    try {
      expect(file.version).toBe(3);
      expect(file.alignment).toBe(32);
      expect(file.dataOffset % 32).toBe(0);
      expect(file.kvs).toEqual(metadata);
      expect(file.tensors.map((t) => [t.name, t.ne, t.type.name, t.offset, t.length])).toEqual([
        ["norm.weight", [7], "F32", 0, 28],
        ["w.weight", [256, 3], "TQ2_0", 32, 198],
        ["scalar", [], "F32", 256, 4],
      ]);
      for (const [i, t] of file.tensors.entries()) expect(await file.readTensor(t.name)).toEqual(payloads[i]);
      expect(file.size).toBe(file.dataOffset + 288);
    } finally {
      await file.close();
    }
  });

  it("headers far larger than the builder's first buffer (a 128k-token vocabulary) round-trip", async () => {
    // every value type lands on both sides of several buffer growths
    const tokens = Array.from({ length: 128256 }, (_, i) => `tok${i}`);
    const big: GgufKv[] = [
      { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } },
      { key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "int32", value: tokens.map((_, i) => i % 7) } },
      { key: "ids", value: { type: "array", itemType: "uint64", value: tokens.slice(0, 9000).map((_, i) => BigInt(i) * 3n) } },
      ...metadata,
    ];
    const layout = layoutGguf(big, []);
    expect(layout.header.byteLength).toBeGreaterThan(1 << 20);
    const file = await openGguf(memorySource("big.gguf", layout.header));
    expect(file.kvs).toEqual(big);
  });

  it("honours general.alignment, and the same input gives the same bytes", () => {
    const kvs: GgufKv[] = [{ key: "general.alignment", value: { type: "uint32", value: 64 } }];
    const tensors = [
      { name: "a", ne: [3], type: ggmlType("llama.cpp", "F32") },
      { name: "b", ne: [3], type: ggmlType("llama.cpp", "F32") },
    ];
    const first = layoutGguf(kvs, tensors, 64);
    expect(first.offsets).toEqual([0, 64]);
    expect(first.dataOffset % 64).toBe(0);
    expect(sha(first.header)).toBe(sha(layoutGguf(kvs, tensors, 64).header));
  });

  it("never leaves a partial file: abort, a short tensor, or an existing output", async () => {
    const path = join(root, "partial.gguf");
    const writer = await GgufWriter.create(path, [], [{ name: "a", ne: [4], type: ggmlType("llama.cpp", "F32") }]);
    await expectB158Error(writer.writeTensor(new Uint8Array(8)), "E_INTERNAL");
    await writer.abort();
    expect((await readdir(root)).filter((f) => f.includes("partial"))).toEqual([]);
    await writeFile(path, "keep me");
    await expectB158Error(GgufWriter.create(path, [], []), "E_OUTPUT_EXISTS", path);
    expect(await readFile(path, "utf8")).toBe("keep me");
  });

  it("reads bitnet.cpp ids when their sizes fit, whatever the architecture says", async () => {
    const tensors = [{ name: "w", ne: [128, 32], type: ggmlType("bitnet.cpp-2024", "I2_S") }];
    for (const [arch, table] of [["bitnet-b1.58", "bitnet.cpp-2024"], ["llama", "bitnet.cpp-2024"]] as const) {
      const layout = layoutGguf([{ key: "general.architecture", value: { type: "string", value: arch } }], tensors);
      const bytes = new Uint8Array(layout.fileSize);
      bytes.set(layout.header);
      const file = await openGguf(memorySource(`${arch}.gguf`, bytes));
      expect(file.runtime).toBe("bitnet.cpp");
      expect(file.types.table).toBe(table);
      expect(file.types.fits).toEqual(["bitnet.cpp-2024", "bitnet.cpp-2026"]);
      expect(file.types.decidedBy).toBe("sizes");
      expect(file.tensors[0]!.type.name).toBe("I2_S");
      expect(file.tensors[0]!.length).toBe(128 * 8 + 32);
    }
  });
});

describe("GGUF export from a .b158", () => {
  const layouts: LayoutId[] = ["tq2_0", "tq1_0", "i2_s", "tl1", "tl2"];
  const b158 = new Map<string, string>();
  let llama: FixtureResult;
  let spm: FixtureResult;

  beforeAll(async () => {
    for (const layout of layouts) {
      const output = join(root, `example-${layout}.b158`);
      await convertCheckpoint(join(process.cwd(), "fixtures", "example"), { layout, output, threads: 0 });
      b158.set(layout, output);
    }
    llama = await generateCheckpoint({ family: "llama-bitnet-packed", dir: join(root, "llama"), seed: 3 });
    spm = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "spm"), seed: 3 });
  });

  async function exported(source: string, name: string, options: Parameters<typeof exportGguf>[1] extends infer O ? Partial<O> : never = {}) {
    const file = await openB158File(source);
    const output = join(root, name);
    try {
      const summary = await exportGguf(file, { output, force: true, ...options });
      return { summary, file, gguf: await openGgufFile(output), output };
    } catch (error) {
      await file.close();
      throw error;
    }
  }
  async function closeAll(...files: (B158File | GgufFile)[]) {
    for (const f of files) await f.close();
  }

  it.each([
    ["tq2_0", "bitnet", "llama.cpp", 37, "TQ2_0"],
    ["tq1_0", "bitnet", "llama.cpp", 36, "TQ1_0"],
    ["i2_s", "bitnet-b1.58", "bitnet.cpp-2024", 40, "I2_S"],
    ["tl1", "bitnet-b1.58", "bitnet.cpp-2024", 38, "TL1"],
    ["tl2", "bitnet-b1.58", "bitnet.cpp-2024", 39, "TL2"],
  ] as const)("%s: arch %s for %s, file type %i, payloads copied byte for byte", async (layout, arch, target, fileType, typeName) => {
    const { summary, file, gguf } = await exported(b158.get(layout)!, `example-${layout}.gguf`);
    try {
      expect(summary.target).toBe(target);
      expect(gguf.types.table).toBe(target);
      expect(gguf.types.decidedBy).toBe("declared");
      expect(gguf.scalar("b158.target")).toBe(target);
      expect(gguf.scalar("general.architecture")).toBe(arch);
      expect(gguf.scalar("general.file_type")).toBe(fileType);
      expect(gguf.scalar("general.quantization_version")).toBe(2);
      expect(gguf.scalar(`${arch}.attention.layer_norm_rms_epsilon`)).toBeCloseTo(1e-5, 10);
      expect(gguf.scalar(`${arch}.rope.freq_base`)).toBe(500000);
      expect(gguf.scalar(`${arch}.hidden_activation`)).toBe("relu2");
      expect(gguf.tensors.some((t) => t.name === "output.weight")).toBe(false);
      expect(gguf.tensors.some((t) => t.name.endsWith("_scale"))).toBe(false);
      const ternary = file.tensors.filter((t) => t.role === "ternary-linear");
      for (const t of ternary) {
        const info = gguf.tensor(t.gguf_name!);
        expect(info.type.name).toBe(typeName);
        expect(info.ne).toEqual([t.shape[1], t.shape[0]]);
        const bytes = await gguf.readTensor(info.name);
        if (layout === "tl1" || layout === "tl2") {
          // the codes, zeros to 32, then the scale slot bitnet.cpp's kernels read: f32 scale, 28 zeros
          const payload = await file.readPayload(t.name);
          expect(sha(bytes.subarray(0, payload.byteLength))).toBe(t.sha256);
          const slot = Math.ceil(payload.byteLength / 32) * 32;
          expect(bytes.byteLength).toBe(slot + 32);
          expect(bytes.subarray(payload.byteLength, slot).every((b) => b === 0)).toBe(true);
          expect(new DataView(bytes.buffer, bytes.byteOffset).getFloat32(slot, true)).toBe(Math.fround(t.scale!));
          expect(bytes.subarray(slot + 4).every((b) => b === 0)).toBe(true);
          expect((await gguf.readBitnetScale(info.name)).scale).toBe(Math.fround(t.scale!));
        } else {
          expect(sha(bytes)).toBe(t.sha256);
        }
      }
      const report = await inspectGguf(gguf.name);
      expect(getValidator("inspect-gguf")(report)).toBe(true);
      const loads = report.runtimes.filter((r) => r.loads === true).map((r) => r.id);
      expect(loads).toEqual(target === "llama.cpp" ? ["llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026", "prismml"] : layout === "tl2" ? ["bitnet.cpp-2024"] : ["bitnet.cpp-2024", "bitnet.cpp-2026"]);
      const validation = await validateGgufReport(gguf.name);
      expect(validation.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
      expect(validation.ok).toBe(true);
      expect(getValidator("validate")(validation)).toBe(true);
    } finally {
      await closeAll(file, gguf);
    }
  });

  it("names the runtimes that compute the wrong activation for a relu2 model, and those that compute relu2", async () => {
    const tq = await exported(b158.get("tq2_0")!, "warn-tq.gguf");
    const i2s = await exported(b158.get("i2_s")!, "warn-i2s.gguf");
    await closeAll(tq.file, tq.gguf, i2s.file, i2s.gguf);
    const warning = (s: typeof tq.summary) => s.diagnostics.find((d) => d.code === "W_GGUF_ACTIVATION")?.message ?? "";
    // a TQ2_0 file loads in mainline and both forks, all under arch bitnet: SiLU everywhere
    expect(warning(tq.summary)).toContain("mainline llama.cpp (arch bitnet: silu)");
    expect(warning(tq.summary)).not.toContain("Correct in");
    // an I2_S file: the 2024-2025 fork computes relu2 for bitnet-b1.58, the 2026 fork SiLU
    expect(warning(i2s.summary)).toContain("bitnet.cpp 2026 fork (arch bitnet-b1.58: silu)");
    expect(warning(i2s.summary)).toContain("Correct in: bitnet.cpp 2024-2025 fork (arch bitnet-b1.58: relu2)");
    expect(warning(i2s.summary)).not.toContain("mainline");
  });

  it("is deterministic", async () => {
    const a = await exported(b158.get("tq1_0")!, "det-a.gguf");
    const b = await exported(b158.get("tq1_0")!, "det-b.gguf");
    await closeAll(a.file, a.gguf, b.file, b.gguf);
    expect(a.summary.sha256).toBe(b.summary.sha256);
    // hashed while writing: it must be the published file's
    expect(a.summary.sha256).toBe(sha(await readFile(a.output)));
  });

  it("writes the BPE tokenizer as gpt2 / llama-bpe with merges, special tokens and the chat template", async () => {
    const { file, gguf } = await exported(b158.get("tq2_0")!, "tok-bpe.gguf");
    try {
      const tokenizer = JSON.parse(new TextDecoder().decode(file.header.files["tokenizer.json"]));
      expect(gguf.scalar("tokenizer.ggml.model")).toBe("gpt2");
      expect(gguf.scalar("tokenizer.ggml.pre")).toBe("llama-bpe");
      const tokens = gguf.metadata.get("tokenizer.ggml.tokens")!.value as string[];
      expect(tokens).toHaveLength(512);
      for (const [token, id] of Object.entries(tokenizer.model.vocab as Record<string, number>)) expect(tokens[id]).toBe(token);
      expect((gguf.metadata.get("tokenizer.ggml.merges")!.value as string[]).length).toBe(tokenizer.model.merges.length);
      const types = gguf.metadata.get("tokenizer.ggml.token_type")!.value as number[];
      expect(tokens[502]).toBe("<|begin_of_text|>");
      expect(types[502]).toBe(3); // control
      expect(types[0]).toBe(1); // normal
      expect(gguf.scalar("tokenizer.ggml.bos_token_id")).toBe(502);
      expect(gguf.scalar("tokenizer.ggml.eos_token_id")).toBe(503);
      expect(gguf.scalar("tokenizer.ggml.add_bos_token")).toBe(true);
      expect(gguf.scalar("tokenizer.chat_template")).toContain("<|start_header_id|>");
    } finally {
      await closeAll(file, gguf);
    }
  });

  it("writes a SentencePiece tokenizer as llama with scores and types, padded to the embedding rows", async () => {
    const source = join(root, "spm.b158");
    await convertCheckpoint(spm.dir, { layout: "tq2_0", output: source, threads: 0 });
    const { gguf } = await exported(source, "tok-spm.gguf").then(async (r) => (await r.file.close(), r));
    try {
      expect(gguf.scalar("general.architecture")).toBe("bitnet");
      expect(gguf.scalar("bitnet.hidden_activation")).toBe("silu");
      expect(gguf.scalar("tokenizer.ggml.model")).toBe("llama");
      const tokens = gguf.metadata.get("tokenizer.ggml.tokens")!.value as string[];
      const scores = gguf.metadata.get("tokenizer.ggml.scores")!.value as number[];
      const types = gguf.metadata.get("tokenizer.ggml.token_type")!.value as number[];
      expect(tokens).toHaveLength(320);
      expect(scores).toHaveLength(320);
      expect(tokens.slice(0, 3)).toEqual(["<unk>", "<s>", "</s>"]);
      expect(types.slice(0, 4)).toEqual([2, 3, 3, 6]); // unknown, control, control, byte <0x00>
      expect(tokens[318]).toBe("<pad>");
      expect(types[318]).toBe(3);
      // not special, but it looks special: control, as llama.cpp's converter types it (does_token_look_special)
      expect(tokens[319]).toBe("<mask>");
      expect(types[319]).toBe(3);
      expect(gguf.scalar("tokenizer.ggml.bos_token_id")).toBe(1);
      expect(gguf.scalar("tokenizer.ggml.eos_token_id")).toBe(2);
      expect(gguf.scalar("tokenizer.ggml.unknown_token_id")).toBe(0);
      expect(gguf.scalar("tokenizer.ggml.padding_token_id")).toBe(318);
    } finally {
      await gguf.close();
    }
  });

  it("Llama-family: arch llama, its own output head, Q/K rows permuted per head and nothing else", async () => {
    const source = join(root, "llama.b158");
    await convertCheckpoint(llama.dir, { layout: "tq2_0", output: source, threads: 0 });
    const { file, gguf } = await exported(source, "llama.gguf");
    try {
      expect(gguf.scalar("general.architecture")).toBe("llama");
      expect(gguf.scalar("llama.rope.freq_base")).toBe(1000042);
      expect(gguf.tensors.some((t) => t.name === "output.weight")).toBe(true);
      expect(gguf.tensors.some((t) => t.name.includes("sub_norm"))).toBe(false);
      const config = file.header.model.config as Record<string, number>;
      const headDim = config.hidden_size! / config.num_attention_heads!;
      for (const t of file.tensors.filter((x) => x.role === "ternary-linear" && x.name.startsWith("model.layers.0."))) {
        const [M, K] = t.shape as [number, number];
        const ours = (await file.decodeTernary(t.name)).codes;
        const theirs = unpackLayout({ layout: "tq2_0", blockSize: 256 }, await gguf.readTensor(t.gguf_name!), [M, K]).codes;
        const heads = t.name.includes("q_proj") ? config.num_attention_heads! : t.name.includes("k_proj") ? config.num_key_value_heads! : 0;
        for (let row = 0; row < M; row++) {
          // GGUF row (head h, pair i, half j) = 2i + j holds HF row j * headDim/2 + i
          const h = Math.floor(row / headDim);
          const within = row % headDim;
          const from = heads === 0 ? row : h * headDim + (within % 2) * (headDim / 2) + Math.floor(within / 2);
          expect(theirs.subarray(row * K, (row + 1) * K)).toEqual(ours.subarray(from * K, (from + 1) * K));
        }
      }
    } finally {
      await closeAll(file, gguf);
    }
  });

  it("--embeddings q8_0 and f32, and --weights f32 with the scales the TQ blocks hold", async () => {
    const q8 = await exported(b158.get("tq2_0")!, "q8.gguf", { embeddings: "q8_0" });
    const f32 = await exported(b158.get("tq2_0")!, "f32.gguf", { embeddings: "f32", weights: "f32" });
    try {
      const embedding = q8.file.tensors.find((t) => t.role === "embedding")!;
      const original = await q8.file.decodeFloat32(embedding.name);
      const info = q8.gguf.tensor("token_embd.weight");
      expect(info.type.name).toBe("Q8_0");
      expect(q8.gguf.scalar("general.file_type")).toBe(37);
      const restored = dequantizeQ8_0(await q8.gguf.readTensor(info.name));
      let worst = 0;
      for (let i = 0; i < original.length; i++) worst = Math.max(worst, Math.abs(restored[i]! - original[i]!));
      const absmax = original.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(worst).toBeLessThanOrEqual((absmax / 127) * 0.51);
      expect(f32.gguf.scalar("general.file_type")).toBe(0);
      expect(f32.gguf.scalar("general.quantization_version")).toBeUndefined();
      const t = f32.file.tensors.find((x) => x.role === "ternary-linear")!;
      const { codes, scale } = await f32.file.decodeTernary(t.name);
      const weights = new Float32Array((await f32.gguf.readTensor(t.gguf_name!)).slice().buffer);
      const d = fromF16Bits(new DataView((await f32.file.readPayload(t.name)).buffer).getUint16(64, true));
      expect(d).toBeCloseTo(scale as number, 3);
      for (let i = 0; i < codes.length; i++) expect(weights[i]).toBe(Math.fround(codes[i]! * d));
    } finally {
      await closeAll(q8.file, q8.gguf, f32.file, f32.gguf);
    }
  });

  it("convert --format gguf leaves only the GGUF behind, and refuses an existing output before converting", async () => {
    const dir = join(root, "direct");
    await rm(dir, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(dir));
    const output = join(dir, "model.gguf");
    const { gguf, conversion } = await convertCheckpointToGguf(join(process.cwd(), "fixtures", "example"), { layout: "tq2_0", output, threads: 0 });
    expect(conversion.validated).toBe(true);
    expect(gguf.architecture).toBe("bitnet");
    expect(await readdir(dir)).toEqual(["model.gguf"]);
    const started = Date.now();
    await expectB158Error(convertCheckpointToGguf(join(process.cwd(), "fixtures", "example"), { layout: "tq2_0", output, threads: 0 }), "E_OUTPUT_EXISTS", output);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await readdir(dir)).toEqual(["model.gguf"]);
  });
});

describe("convert --format gguf: refusals before any work", () => {
  it("a checkpoint without tokenizer files is refused up front, naming what is missing", async () => {
    const dir = join(root, "no-tokenizer");
    await generateCheckpoint({ family: "bitnet-2b4t-packed", dir, seed: 5 });
    for (const name of await readdir(dir)) if (name.startsWith("tokenizer")) await rm(join(dir, name));
    const output = join(root, "no-tokenizer.gguf");
    const error = await expectB158Error(convertCheckpointToGguf(dir, { layout: "tq2_0", output, threads: 0 }), "E_GGUF_EXPORT");
    expect(error.message).toContain("tokenizer.model or tokenizer.json");
    expect((await readdir(root)).filter((f) => f.includes("no-tokenizer.gguf"))).toEqual([]);
  });
});

describe("GGUF validate: what llama.cpp's loader would refuse", () => {
  async function rewrite(source: string, output: string, change: (kvs: GgufKv[], tensors: { name: string; ne: readonly number[]; type: ReturnType<typeof ggmlType>; bytes: () => Promise<Uint8Array> }[]) => void) {
    const file = await openGgufFile(source);
    try {
      const kvs = [...file.kvs];
      const tensors = file.tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.type, bytes: () => file.readTensor(t.name) }));
      change(kvs, tensors);
      const writer = await GgufWriter.create(output, kvs, tensors, { force: true });
      for (const t of tensors) await writer.writeTensor(await t.bytes());
      await writer.commit();
    } finally {
      await file.close();
    }
  }
  let base: string;
  beforeAll(async () => {
    const b158 = join(root, "validate.b158");
    await convertCheckpoint(join(process.cwd(), "fixtures", "example"), { layout: "tq2_0", output: b158, threads: 0 });
    const file = await openB158File(b158);
    base = join(root, "validate.gguf");
    await exportGguf(file, { output: base });
    await file.close();
  });

  it.each([
    ["a missing rms epsilon", "E_GGUF_MISSING_KEY", (kvs: GgufKv[]) => kvs.splice(kvs.findIndex((k) => k.key === "bitnet.attention.layer_norm_rms_epsilon"), 1)],
    ["a missing sub-norm", "E_GGUF_MISSING_TENSOR", (_: GgufKv[], t: { name: string }[]) => t.splice(t.findIndex((x) => x.name === "blk.0.attn_sub_norm.weight"), 1)],
    [
      "an output.weight in a tied architecture",
      "E_GGUF_EXTRA_TENSOR",
      (_: GgufKv[], t: { name: string; ne: readonly number[]; type: ReturnType<typeof ggmlType>; bytes: () => Promise<Uint8Array> }[]) => t.push({ ...t.find((x) => x.name === "token_embd.weight")!, name: "output.weight" }),
    ],
    [
      "a vocabulary shorter than the embedding",
      "E_GGUF_SHAPE",
      (kvs: GgufKv[]) => {
        const i = kvs.findIndex((k) => k.key === "tokenizer.ggml.tokens");
        kvs[i] = { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: (kvs[i]!.value.value as string[]).slice(1) } };
      },
    ],
    [
      "a NaN in a norm",
      "E_NONFINITE",
      (_: GgufKv[], t: { name: string; bytes: () => Promise<Uint8Array> }[]) => {
        const norm = t.find((x) => x.name === "output_norm.weight")!;
        const read = norm.bytes;
        norm.bytes = async () => {
          const b = (await read()).slice();
          new DataView(b.buffer).setFloat32(4, Number.NaN, true);
          return b;
        };
      },
    ],
    [
      "the unused TQ2_0 code 3",
      "E_PACKED_CODE",
      (_: GgufKv[], t: { name: string; bytes: () => Promise<Uint8Array> }[]) => {
        const w = t.find((x) => x.name === "blk.0.attn_q.weight")!;
        const read = w.bytes;
        w.bytes = async () => {
          const b = (await read()).slice();
          b[0] = 0xff;
          return b;
        };
      },
    ],
  ] as const)("reports %s as %s", async (_, code, change) => {
    const output = join(root, `broken-${code}.gguf`);
    await rewrite(base, output, change as never);
    const report = await validateGgufReport(output);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.filter((d) => d.severity === "error").map((d) => d.code)).toEqual([code]);
  });

  it("accepts the file as exported", async () => {
    const report = await validateGgufReport(base);
    expect(report.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });
});
