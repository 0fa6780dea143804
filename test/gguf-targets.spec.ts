import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gguf as parseWithHuggingFace } from "@huggingface/gguf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { convertCheckpointToGguf } from "../src/export/convert-gguf.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { openGguf, openGgufFile } from "../src/formats/gguf/read.js";
import { memorySource } from "../src/io/byte-source.js";
import { unpackLayout } from "../src/pack/codec.js";
import type { LayoutId, LayoutParams } from "../src/pack/layouts.js";
import { inspectB158, validateB158Report } from "../src/report/b158-report.js";
import { inspectCheckpoint, validateCheckpoint } from "../src/report/checkpoint-report.js";
import { inspectGguf, validateGgufReport } from "../src/report/gguf-report.js";
import { getValidator } from "../src/schemas.js";
import { buildGguf, forkTlData, kv, tensorBytes, tl2CodeBytes, type KvSpec, type TensorSpec, type TypeName } from "./support/build-gguf.js";
import { expectB158Error } from "./support/expect-error.js";

/**
 * GGUFs for the runtimes whose type ids disagree (docs/gguf.md): bitnet.cpp's TL1/TL2 files as
 * the fork writes them (the scale in a 32-byte slot after the codes, no scale tensor), one type
 * table per runtime chosen with --target and recorded as b158.target, ids read by evidence when a
 * file does not say, the runtimes that compute the wrong activation, and the GGUFs b158 refuses.
 * The fork-style files are built by test/support/build-gguf.ts, which shares no code with src.
 */
const repo = fileURLToPath(new URL("..", import.meta.url));
const example = join(repo, "fixtures", "example");
const VECTORS = join(repo, "test", "vectors", "bitnet");
const SCALE = 53 / 1024;

let root: string;
const b158 = new Map<LayoutId, string>();
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-gguf-targets-"));
  for (const layout of ["tl1", "tl2", "i2_s", "tq2_0"] as const) {
    const output = join(root, `example-${layout}.b158`);
    await convertCheckpoint(example, { layout, output, threads: 0 });
    b158.set(layout, output);
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function exportTo(layout: LayoutId, name: string, options: Partial<Parameters<typeof exportGguf>[1]> = {}) {
  const file = await openB158File(b158.get(layout)!);
  try {
    const output = join(root, name);
    const summary = await exportGguf(file, { output, force: true, ...options });
    return { summary, output };
  } finally {
    await file.close();
  }
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

const vector = (name: string) => new Uint8Array(readFileSync(join(VECTORS, name)));

describe("TL1/TL2 GGUFs as bitnet.cpp writes them: the scale in a 32-byte slot after the codes", () => {
  const tl1: LayoutParams = { layout: "tl1", BM: 128, BK: 64, bm: 32, tilingSource: "preset" };
  const tl2: LayoutParams = { layout: "tl2", BM: 128, BK: 96, bm: 32, tilingSource: "preset" };
  const forkFile = (tl2Type: TypeName, architecture = "bitnet-b1.58") =>
    buildGguf({
      kvs: [kv.str("general.architecture", architecture), kv.str("general.name", "vectors")],
      tensors: [
        { name: "blk.0.ffn_up.weight", ne: [256, 256], type: "TL1", data: forkTlData(vector("tl1_256x256_BM128_BK64_bm32.bin"), SCALE) },
        { name: "blk.0.ffn_down.weight", ne: [256, 256], type: tl2Type, data: forkTlData(vector("tl2_256x256_BM128_BK96_bm32.bin"), SCALE) },
        // P = 11605 code bytes: zeros to 11616, then the slot
        { name: "blk.0.attn_q.weight", ne: [384, 128], type: tl2Type, data: forkTlData(vector("tl2_128x384_BM64_BK96_bm32.bin"), SCALE) },
        { name: "output_norm.weight", ne: [4], type: "F32", data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) },
      ],
    });

  it.each([
    ["TL2", "bitnet.cpp-2024", ["bitnet.cpp-2024"]],
    ["TL2_2026", "bitnet.cpp-2026", ["bitnet.cpp-2026"]],
  ] as const)("a file built from bitnet.cpp's own TL bytes (%s id) is read, and its codes and scales decoded", async (tl2Type, table, fits) => {
    const file = await openGguf(memorySource("fork.gguf", forkFile(tl2Type)));
    expect(file.types.table).toBe(table);
    expect(file.types.fits).toEqual(fits);
    expect(file.types.decidedBy).toBe("sizes");
    expect(tl2CodeBytes(384, 128)).toBe(11605);
    expect(file.tensors.map((t) => [t.name, t.type.name, t.offset, t.length])).toEqual([
      ["blk.0.ffn_up.weight", "TL1", 0, 16384 + 32],
      ["blk.0.ffn_down.weight", "TL2", 16416, 16384 + 32],
      ["blk.0.attn_q.weight", "TL2", 32832, 11616 + 32],
      ["output_norm.weight", "F32", 32832 + 11648, 16],
    ]);
    const cases = [
      ["blk.0.ffn_up.weight", tl1, 16384, [256, 256], "ternary_256x256.i8"],
      ["blk.0.ffn_down.weight", tl2, 16384, [256, 256], "ternary_256x256.i8"],
      ["blk.0.attn_q.weight", { ...tl2, BM: 64 }, 11605, [128, 384], "ternary_128x384_seed777.i8"],
    ] as const;
    for (const [name, params, codeBytes, shape, codesFile] of cases) {
      expect(await file.readBitnetScale(name)).toEqual({ scale: SCALE, nonZeroPadding: 0 });
      const codes = unpackLayout(params, (await file.readTensor(name)).subarray(0, codeBytes), shape).codes;
      expect(Buffer.from(codes.buffer, codes.byteOffset, codes.byteLength).equals(Buffer.from(vector(codesFile))), name).toBe(true);
    }
  });

  it("validate checks the slot: a positive finite scale, zeros around it", async () => {
    const path = join(root, "fork-vectors.gguf");
    // an architecture b158 does not check: only the data scan speaks
    const bytes = forkFile("TL2", "vectors");
    await writeFile(path, bytes);
    const good = await validateGgufReport(path);
    expect(good.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const dataOffset = (await openGguf(memorySource("x", bytes))).dataOffset;
    const broken: [string, (b: Uint8Array, v: DataView) => void, string][] = [
      ["a zero scale", (_, v) => v.setFloat32(dataOffset + 16384, 0, true), "E_SCALE_INVALID"],
      ["a NaN scale", (_, v) => v.setFloat32(dataOffset + 16384, Number.NaN, true), "E_NONFINITE"],
      ["a byte in the 28 after the scale", (b) => (b[dataOffset + 16384 + 10] = 1), "E_GGUF_PADDING"],
      ["a byte in TL2's padding before its slot", (b) => (b[dataOffset + 32832 + 11605] = 7), "E_GGUF_PADDING"],
    ];
    for (const [what, change, code] of broken) {
      const copy = bytes.slice();
      change(copy, new DataView(copy.buffer));
      await writeFile(path, copy);
      const report = await validateGgufReport(path);
      expect(report.ok, what).toBe(false);
      expect(report.diagnostics.filter((d) => d.severity === "error").map((d) => d.code), what).toEqual([code]);
    }
  });

  /** The exported file rebuilt the fork's way: same metadata, TL tensors as codes + slot, no scale tensors. */
  async function forkBuilt(layout: "tl1" | "tl2", ours: string): Promise<Uint8Array> {
    const parsed = await parseWithHuggingFace(ours, { allowLocalFile: true, typedMetadata: true });
    const kvs = metadataOf(parsed.typedMetadata, []);
    const oursBytes = new Uint8Array(await readFile(ours));
    const dataStart = Number(parsed.tensorDataOffset);
    const source = await openB158File(b158.get(layout)!);
    try {
      const tensors: TensorSpec[] = [];
      for (const t of source.tensors) {
        if (t.gguf_name === null) continue;
        const ne = [...t.shape].reverse();
        if (t.role === "ternary-linear") {
          tensors.push({ name: t.gguf_name, ne, type: layout === "tl1" ? "TL1" : "TL2", data: forkTlData(await source.readPayload(t.name), Math.fround(t.scale!)) });
          continue;
        }
        // plain tensors are not under test: their bytes as our file stores them
        const info = parsed.tensorInfos.find((i) => i.name === t.gguf_name)!;
        const type = info.dtype === 0 ? "F32" : "F16";
        const at = dataStart + Number(info.offset);
        tensors.push({ name: t.gguf_name, ne, type, data: oursBytes.slice(at, at + tensorBytes(type, ne)) });
      }
      return buildGguf({ kvs, tensors });
    } finally {
      await source.close();
    }
  }

  it.each(["tl1", "tl2"] as const)("%s: export writes exactly the fork's file, byte for byte, and inspect/validate pass on it", async (layout) => {
    const { output } = await exportTo(layout, `fork-${layout}.gguf`);
    const expected = await forkBuilt(layout, output);
    const ours = new Uint8Array(await readFile(output));
    expect(ours.byteLength).toBe(expected.byteLength);
    expect(Buffer.from(ours).equals(Buffer.from(expected))).toBe(true);
    const gguf = await openGgufFile(output);
    await gguf.close();
    expect(gguf.tensors.some((t) => t.name.endsWith("_scale"))).toBe(false);
    const report = await inspectGguf(output);
    expect(getValidator("inspect-gguf")(report)).toBe(true);
    expect(report.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const validation = await validateGgufReport(output);
    expect(validation.ok).toBe(true);
    // the CLI writes the same bytes
    const viaCli = join(root, `fork-${layout}-cli.gguf`);
    const run = await cli(["export", b158.get(layout)!, "-o", viaCli]);
    expect(run.code, run.stderr).toBe(0);
    expect(Buffer.from(await readFile(viaCli)).equals(Buffer.from(expected))).toBe(true);
  });
});

describe("--target: one type table per runtime, recorded in the file", () => {
  it.each([
    ["i2_s", undefined, "bitnet.cpp-2024", "I2_S", 36, 40],
    ["tl1", undefined, "bitnet.cpp-2024", "TL1", 38, 38],
    ["tl2", undefined, "bitnet.cpp-2024", "TL2", 39, 39],
    ["i2_s", "bitnet.cpp-2026", "bitnet.cpp-2026", "I2_S", 36, 41],
    ["tl1", "bitnet.cpp-2026", "bitnet.cpp-2026", "TL1", 38, 42],
    ["tl2", "bitnet.cpp-2026", "bitnet.cpp-2026", "TL2", 42, 43],
    ["tq2_0", undefined, "llama.cpp", "TQ2_0", 35, 37],
  ] as const)("%s --target %s: %s ids (%s = %i), general.file_type %i", async (layout, requested, target, typeName, id, fileType) => {
    const { summary, output } = await exportTo(layout, `target-${layout}-${target}.gguf`, requested === undefined ? {} : { target: requested });
    expect(summary.target).toBe(target);
    expect(summary.fileType).toBe(fileType);
    const gguf = await openGgufFile(output);
    await gguf.close();
    expect(gguf.scalar("b158.target")).toBe(target);
    expect(gguf.types).toMatchObject({ table: target, decidedBy: "declared" });
    expect(gguf.scalar("general.file_type")).toBe(fileType);
    const weights = gguf.tensors.filter((t) => t.name.startsWith("blk.") && t.ne.length === 2);
    expect(weights.every((t) => t.type.name === typeName && t.type.id === id)).toBe(true);
    // an independent parser sees the same ids
    const theirs = await parseWithHuggingFace(output, { allowLocalFile: true });
    expect(theirs.tensorInfos.filter((t) => t.name === weights[0]!.name)[0]!.dtype).toBe(id);
  });

  it("without b158.target, the ids are read by what fits the file; general.file_type never decides", async () => {
    for (const [layout, target, fits] of [
      ["tl2", "bitnet.cpp-2026", ["bitnet.cpp-2026"]],
      ["tl2", "bitnet.cpp-2024", ["bitnet.cpp-2024"]],
      ["i2_s", "bitnet.cpp-2026", ["bitnet.cpp-2024", "bitnet.cpp-2026"]],
    ] as const) {
      const { output } = await exportTo(layout, `undeclared-${layout}-${target}.gguf`, { target });
      const bytes = await withoutKeys(output, ["b158.target"]);
      const file = await openGguf(memorySource("undeclared.gguf", bytes));
      expect(file.types.declared).toBeUndefined();
      expect(file.types.fits).toEqual(fits);
      expect(file.types.decidedBy).toBe("sizes");
      expect(file.tensors.find((t) => t.name === "blk.0.ffn_up.weight")!.type.name).toBe(layout.toUpperCase());
    }
  });

  it("inspect names every meaning of the file's ids and file type, and the runtimes that load it", async () => {
    const { output } = await exportTo("tl2", "inspect-2026.gguf", { target: "bitnet.cpp-2026" });
    const report = await inspectGguf(output);
    expect(getValidator("inspect-gguf")(report)).toBe(true);
    const id42 = report.typeIds.find((t) => t.id === 42)!;
    expect(id42.readAs).toBe("TL2");
    expect(id42.meanings).toEqual([
      { runtime: "mainline llama.cpp", name: "Q2_0 (ternary, g64, f16 d first)", fits: false },
      { runtime: "bitnet.cpp 2026 fork", name: "TL2", fits: true },
      { runtime: "PrismML llama.cpp fork", name: "Q2_0 (PrismML's original, g128)", fits: false },
      { runtime: "other", name: 'nebuxcloud "q2b1" files (third party)', fits: null },
    ]);
    expect(report.fileTypeMeanings).toEqual([{ runtime: "bitnet.cpp 2026 fork", name: "TL2" }]);
    expect(report.runtimes.map((r) => [r.id, r.loads])).toEqual([
      ["llama.cpp", false],
      ["bitnet.cpp-2024", false],
      ["bitnet.cpp-2026", true],
      ["prismml", false],
    ]);
    expect(report.runtimes[0]!.reason).toContain("reads type 42 as Q2_0");
    expect(report.loadableBy).toBe("bitnet.cpp 2026 fork");
    const i2s = await inspectGguf((await exportTo("i2_s", "inspect-i2s.gguf")).output);
    expect(i2s.fileTypeMeanings).toEqual([
      { runtime: "mainline llama.cpp", name: "Q1_0" },
      { runtime: "bitnet.cpp 2024-2025 fork", name: "I2_S" },
      { runtime: "bitnet.cpp 2026 fork", name: "Q1_0" },
      { runtime: "PrismML llama.cpp fork", name: "Q1_0" },
    ]);
    const human = await cli(["inspect", output]);
    expect(human.stdout).toContain("id 42");
    expect(human.stdout).toContain("TL2 in bitnet.cpp 2026 fork");
    expect(human.stdout).toMatch(/bitnet\.cpp 2026 fork\s+loads/);
  });

  it("an id whose meanings all fit the file stays ambiguous, and inspect says so", async () => {
    // id 42, 128 weights: mainline Q2_0 (two 18-byte blocks) and PrismML Q2_0 (one 34-byte block) both pad to 64
    const bytes = buildGguf({ kvs: [kv.str("general.architecture", "qwen3")], tensors: [{ name: "w", ne: [128, 1], type: "Q2_0" }] });
    const path = join(root, "ambiguous.gguf");
    await writeFile(path, bytes);
    const report = await inspectGguf(path);
    expect(report.typeTable.decidedBy).toBe("ambiguous");
    expect(report.typeTable.fits).toEqual(["llama.cpp", "prismml"]);
    expect(report.typeIds[0]!.ambiguous).toBe(true);
    expect(report.diagnostics.find((d) => d.code === "W_GGUF_AMBIGUOUS_TYPES")?.message).toContain("Q2_0 (PrismML's original, g128)");
    // a second tensor's offset decides it
    const decided = await openGguf(memorySource("x", buildGguf({ kvs: [kv.str("general.architecture", "qwen3")], tensors: [{ name: "w", ne: [128, 16], type: "PRISM_Q2_0" }, { name: "v", ne: [4], type: "F32" }] })));
    expect(decided.types).toMatchObject({ table: "prismml", decidedBy: "sizes", fits: ["prismml"] });
  });

  it("a target that cannot hold the layout is a usage error, before any conversion", async () => {
    const file = await openB158File(b158.get("tq2_0")!);
    try {
      const error = await expectB158Error(exportGguf(file, { output: join(root, "no.gguf"), target: "bitnet.cpp-2026" }), "E_USAGE");
      expect(error.hint).toContain("--target llama.cpp");
    } finally {
      await file.close();
    }
    const started = Date.now();
    const output = join(root, "refused-target.gguf");
    const error = await expectB158Error(convertCheckpointToGguf(example, { layout: "i2_s", output, threads: 0, target: "llama.cpp" }), "E_USAGE");
    expect(error.message).toContain("--target llama.cpp cannot hold --layout i2_s");
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await readdir(root)).filter((f) => f.includes("refused-target"))).toEqual([]);
    const run = await cli(["convert", example, "-o", join(root, "x.b158"), "--layout", "tq2_0", "--target", "llama.cpp", "--json"]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe("E_USAGE");
  });

  it("convert --target writes the target's ids straight from a checkpoint", async () => {
    const output = join(root, "direct-2026.gguf");
    const run = await cli(["convert", example, "-o", output, "--layout", "tl2", "--target", "bitnet.cpp-2026", "--threads", "0", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).gguf).toMatchObject({ target: "bitnet.cpp-2026", fileType: 43 });
    const gguf = await openGgufFile(output);
    await gguf.close();
    expect(gguf.tensor("blk.0.ffn_up.weight").type.id).toBe(42);
  });
});

describe("the runtimes that compute the wrong FFN activation, for checkpoints, .b158 files and GGUFs", () => {
  const warning = (diagnostics: readonly { code: string; message: string }[]) => diagnostics.find((d) => d.code === "W_GGUF_ACTIVATION")?.message;

  it("a relu2 checkpoint (2B-4T style): mainline and the 2026 fork compute SiLU, the 2024-2025 fork relu2", async () => {
    for (const report of [await inspectCheckpoint(example), await validateCheckpoint(example)]) {
      const message = warning(report.diagnostics)!;
      expect(message).toContain("config.json hidden_act is relu2");
      expect(message).toContain("mainline llama.cpp (arch bitnet: silu)");
      expect(message).toContain("bitnet.cpp 2026 fork (arch bitnet-b1.58: silu)");
      expect(message).toContain("Correct in: bitnet.cpp 2024-2025 fork (arch bitnet-b1.58: relu2)");
    }
    const run = await cli(["inspect", example]);
    expect(run.stdout).toContain("W_GGUF_ACTIVATION");
    const json = await cli(["inspect", example, "--json"]);
    expect(warning(JSON.parse(json.stdout).diagnostics)).toContain("bitnet.cpp 2026 fork");
  });

  it("SiLU models (1bitLLM, Llama-family) get no warning, and every GGUF architecture gets hidden_activation", async () => {
    for (const family of ["bitnet-1bitllm", "llama-bitnet-packed"] as const) {
      const dir = join(root, family);
      await generateCheckpoint({ family, dir, seed: 3 });
      expect(warning((await inspectCheckpoint(dir)).diagnostics)).toBeUndefined();
      const output = join(root, `${family}.gguf`);
      const { gguf } = await convertCheckpointToGguf(dir, { layout: "tq2_0", output, threads: 0 });
      expect(warning(gguf.diagnostics)).toBeUndefined();
      const file = await openGgufFile(output);
      await file.close();
      expect(file.scalar(`${gguf.architecture}.hidden_activation`)).toBe("silu");
    }
  });

  it("a .b158 names only the runtimes its layout can go to; convert says the same", async () => {
    const tq = await inspectB158(b158.get("tq2_0")!);
    expect(getValidator("inspect-b158")(tq)).toBe(true);
    expect(warning(tq.diagnostics)).toContain("mainline llama.cpp (arch bitnet: silu)");
    expect(warning(tq.diagnostics)).not.toContain("bitnet.cpp");
    const i2s = await validateB158Report(b158.get("i2_s")!);
    expect(i2s.ok).toBe(true);
    expect(warning(i2s.diagnostics)).toContain("bitnet.cpp 2026 fork (arch bitnet-b1.58: silu)");
    expect(warning(i2s.diagnostics)).not.toContain("mainline");
    const human = await cli(["inspect", b158.get("i2_s")!]);
    expect(human.stdout).toContain("W_GGUF_ACTIVATION");
    const summary = await convertCheckpoint(example, { layout: "tq1_0", output: join(root, "act.b158"), threads: 0 });
    const line = summary.warnings.find((w) => w.code === "W_GGUF_ACTIVATION")!.message;
    expect(line).toContain("mainline llama.cpp");
    expect(line).not.toContain("2026");
  });

  it("a GGUF: from <arch>.hidden_activation, or for bitnet-b1.58 without it (the official 2B-4T file) from the architecture", async () => {
    const { output } = await exportTo("i2_s", "act-i2s.gguf");
    const declared = await inspectGguf(output);
    expect(warning(declared.diagnostics)).toContain("bitnet-b1.58.hidden_activation is relu2");
    expect(warning(declared.diagnostics)).toContain("bitnet.cpp 2026 fork (arch bitnet-b1.58: silu)");
    expect(declared.runtimes.map((r) => [r.id, r.activation])).toEqual([
      ["llama.cpp", null],
      ["bitnet.cpp-2024", "relu2"],
      ["bitnet.cpp-2026", "silu"],
      ["prismml", null],
    ]);
    const bare = join(root, "act-official-like.gguf");
    await writeFile(bare, await withoutKeys(output, ["b158.target", "bitnet-b1.58.hidden_activation"]));
    const official = await validateGgufReport(bare);
    expect(official.ok).toBe(true);
    expect(warning(official.diagnostics)).toContain("the activation arch bitnet-b1.58 was made for");
    expect(warning(official.diagnostics)).toContain("bitnet.cpp 2026 fork");
  });
});

describe("GGUFs b158 refuses to treat as ternary", () => {
  const files: [kind: string, build: () => Uint8Array, words: string][] = [
    ["q1_0", () => buildGguf({ kvs: [kv.str("general.architecture", "qwen3")], tensors: [{ name: "blk.0.attn_q.weight", ne: [128, 2], type: "Q1_0" }] }), "binary 1-bit"],
    ["pq2_0", () => buildGguf({ kvs: [kv.str("general.architecture", "qwen35")], tensors: [{ name: "blk.0.attn_q.weight", ne: [128, 2], type: "PQ2_0" }] }), "PQ2_0 (type 142)"],
    ["ptq1_0", () => buildGguf({ kvs: [kv.str("general.architecture", "qwen35")], tensors: [{ name: "blk.0.attn_q.weight", ne: [128, 2], type: "PTQ1_0" }] }), "PTQ1_0 (type 143)"],
    [
      "hadamard",
      () =>
        buildGguf({
          kvs: [kv.str("general.architecture", "qwen3"), kv.u32("prism.hadamard.version", 1), kv.u32("prism.hadamard.block_size", 1024), kv.arr("prism.hadamard.signs.1024", "int8", [1, -1, 1, 1])],
          tensors: [{ name: "blk.0.attn_q.weight", ne: [256, 2], type: "TQ2_0" }],
        }),
      "Hadamard-rotated basis",
    ],
  ];

  it.each(files)("%s: inspect identifies it; convert and export refuse it with E_FORMAT_REFUSED", async (kind, build, words) => {
    const path = join(root, `refused-${kind}.gguf`);
    await writeFile(path, build());
    const report = await inspectGguf(path);
    expect(getValidator("inspect-gguf")(report)).toBe(true);
    expect(report.refusals.map((r) => r.kind)).toEqual([kind]);
    expect(report.refusals[0]!.message).toContain(words);
    expect(report.diagnostics.find((d) => d.code === "W_GGUF_REFUSED")?.message).toContain(words);
    const error = await expectB158Error(convertCheckpoint(path, { layout: "tq2_0", output: join(root, `${kind}.b158`), threads: 0 }), "E_FORMAT_REFUSED", path);
    expect(error.message).toContain(words);
    await expectB158Error(convertCheckpointToGguf(path, { layout: "tq2_0", output: join(root, `${kind}-out.gguf`), threads: 0 }), "E_FORMAT_REFUSED", path);
    const run = await cli(["export", path, "-o", join(root, `${kind}-export.gguf`), "--json"]);
    expect(run.code).toBe(7);
    expect(JSON.parse(run.stdout).error).toMatchObject({ code: "E_FORMAT_REFUSED" });
    expect(JSON.parse(run.stdout).error.message).toContain(words);
    expect((await readdir(root)).filter((f) => f.startsWith(`${kind}`))).toEqual([]);
  });

  it("a ternary GGUF is no checkpoint either: convert says so with E_SOURCE_UNRECOGNIZED", async () => {
    const { output } = await exportTo("tq2_0", "input.gguf");
    const error = await expectB158Error(convertCheckpoint(output, { layout: "tq2_0", output: join(root, "from-gguf.b158"), threads: 0 }), "E_SOURCE_UNRECOGNIZED", output);
    expect(error.message).toContain("is a GGUF");
    expect((await inspectGguf(output)).refusals).toEqual([]);
  });
});

/** The file with some metadata entries removed: the same tensors at the same data offsets, a shorter header. */
async function withoutKeys(path: string, keys: readonly string[]): Promise<Uint8Array> {
  const parsed = await parseWithHuggingFace(path, { allowLocalFile: true, typedMetadata: true });
  const bytes = new Uint8Array(await readFile(path));
  const kvs = metadataOf(parsed.typedMetadata, keys);
  const dataStart = Number(parsed.tensorDataOffset);
  const infos = parsed.tensorInfos;
  // each tensor's bytes run to the next one's offset (its padding included)
  const tensors: TensorSpec[] = infos.map((t, i) => {
    const offset = Number(t.offset);
    const end = i + 1 < infos.length ? Number(infos[i + 1]!.offset) : bytes.byteLength - dataStart;
    return { name: t.name, ne: t.shape.map(Number), typeId: t.dtype, offset, data: bytes.slice(dataStart + offset, dataStart + end) };
  });
  return buildGguf({ kvs, tensors });
}

/** A file's metadata, as @huggingface/gguf parsed it (types included), for the builder; less some keys. */
function metadataOf(typed: Record<string, unknown>, leaveOut: readonly string[]): KvSpec[] {
  return Object.entries(typed)
    .filter(([key]) => !["version", "tensor_count", "kv_count", ...leaveOut].includes(key))
    .map(([key, v]) => {
      const { value, type, subType } = v as { value: unknown; type: number; subType?: number };
      return subType === undefined ? kv.of(key, type, value as string) : kv.arr(key, subType, value as string[]);
    });
}
