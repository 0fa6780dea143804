import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXAMPLE, generateCheckpoint } from "../fixtures/generate.js";
import { convertCheckpoint, type ConvertOptions } from "../src/convert/convert.js";
import { validateB158 } from "../src/convert/validate-b158.js";
import { B158Error } from "../src/errors.js";
import { decodeHeader, encodeHeader, type B158Header } from "../src/formats/b158/header.js";
import { openB158, type B158File } from "../src/formats/b158/read.js";
import { compareTensorNames } from "../src/checkpoint/open.js";
import { memorySource } from "../src/io/byte-source.js";
import { packLayout } from "../src/pack/codec.js";
import type { LayoutParams } from "../src/pack/layouts.js";
import { GROUP_DAMAGE, OPEN_DAMAGE, u64, withHeader } from "./support/b158-damage.js";
import { DocError, docNameOrder, decodePlain, decodeTernary, effectiveWeights, openDoc, unpack, validateDoc, type DocFile } from "./support/doc-reader.js";
import { forgeB158 } from "./support/forge-b158.js";

/**
 * docs/FORMAT.md and docs/layouts.md are enough to read every .b158 file: test/support/doc-reader.ts,
 * written from them alone, decodes b158-written files of every layout (and tiling corner) to the
 * codes and scales b158's reader gives, reads the documents' worked examples byte for byte, and
 * refuses every damaged file b158's reader refuses, with the same code.
 */

const docs = (name: string) => readFile(fileURLToPath(new URL(`../docs/${name}`, import.meta.url)), "utf8");

it("the reader written from the documents imports nothing of b158's: only node built-ins", async () => {
  const source = await readFile(fileURLToPath(new URL("./support/doc-reader.ts", import.meta.url)), "utf8");
  const imports = [...source.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']/gm), ...source.matchAll(/\bimport\s*\(\s*["']([^"']+)["']/g)].map((m) => m[1]!);
  expect(imports.length).toBeGreaterThan(0);
  expect(imports.filter((name) => !name.startsWith("node:") && name !== "msgpackr")).toEqual([]);
  // nor reads b158's sources or schemas at run time
  expect(source).not.toMatch(/\.\.\/(?:\.\.\/)?(?:src|schemas)\//);
});

// the example model (one layer of it) has the shapes [M, K]: q/o [256, 256], k/v [128, 256], gate/up [768, 256], down [256, 768]
const kernelConfig = (tilings: Record<string, [BM: number, BK: number, bm: number]>) => ({
  file: "kernel_config.ini",
  text: Object.entries(tilings)
    .map(([shape, [BM, BK, bm]], i) => `[Kernels_${i}]\nm = ${shape.split(",")[0]}\nk = ${shape.split(",")[1]}\nbm = ${BM}\nbk = ${BK}\nbmm = ${bm}\n`)
    .join("\n"),
});

type Source = { kind: "example" } | { kind: "fake-quantized"; granularity: 128 | 256 | "row" };
const CASES: readonly (readonly [name: string, source: Source, options: Omit<ConvertOptions, "output" | "threads">])[] = [
  ["i2_s x86 (block 128)", { kind: "example" }, { layout: "i2_s" }],
  ["i2_s arm (block 64)", { kind: "example" }, { layout: "i2_s", i2sVariant: "arm" }],
  // computed tilings: bm 32; BM 256 over M 768 (three row tiles), BK 128 over K 768 (six column tiles)
  ["tl1 (computed tiling)", { kind: "example" }, { layout: "tl1" }],
  ["tl1 with bm 64 (by 4)", { kind: "example" }, { layout: "tl1", kernelConfig: kernelConfig({ "256,256": [128, 64, 64], "128,256": [64, 32, 64], "768,256": [192, 256, 64], "256,768": [256, 48, 64] }) }],
  // BK 96: K 256 has a 64-column tail, K 768 none; BM 256 over M 768, 128 over M 128 (four 32-row groups)
  ["tl2 (computed tiling)", { kind: "example" }, { layout: "tl2" }],
  // BK 192 over K 256: one column tile and a 64-column tail; BK 288 over K 768: two and a 192-column tail (six B steps)
  ["tl2 with wide tails and small row tiles", { kind: "example" }, { layout: "tl2", kernelConfig: kernelConfig({ "256,256": [64, 192, 32], "128,256": [32, 192, 32], "768,256": [96, 192, 32], "256,768": [128, 288, 32] }) }],
  ["tq1_0", { kind: "example" }, { layout: "tq1_0" }],
  ["tq2_0", { kind: "example" }, { layout: "tq2_0" }],
  ["q2_0", { kind: "example" }, { layout: "q2_0" }],
  // 1.1: per-group scales in the blocks' d, and ternary embedding / lm-head tensors (Qwen3's)
  ["q2_0, group_size 128", { kind: "fake-quantized", granularity: 128 }, { layout: "q2_0" }],
  ["tq1_0, group_size 256", { kind: "fake-quantized", granularity: 256 }, { layout: "tq1_0" }],
  ["tq2_0, a scale per row", { kind: "fake-quantized", granularity: "row" }, { layout: "tq2_0" }],
];

let root: string;
const written = new Map<string, Uint8Array>();
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-doc-reader-"));
  for (const [name, source, options] of CASES) {
    const dir = join(root, source.kind === "example" ? "example" : `src-${source.granularity}`);
    if (source.kind === "example") await generateCheckpoint({ ...EXAMPLE, dir, dims: { ...EXAMPLE.dims, layers: 1 } });
    else await generateCheckpoint({ family: "qwen3-fake-quantized", dir, granularity: source.granularity, dims: { layers: 1 } });
    const output = join(root, `${written.size}.b158`);
    await convertCheckpoint(dir, { ...options, output, threads: 0 });
    written.set(name, new Uint8Array(await readFile(output)));
  }
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const open = (bytes: Uint8Array, name = "file.b158") => openB158(memorySource(name, bytes));
/** What b158's validation reports (errors only), as [code, tensor], sorted. */
async function libraryFindings(bytes: Uint8Array): Promise<string[][]> {
  const path = join(root, "validate.b158");
  await writeFile(path, bytes);
  const report = await validateB158(path);
  return report.diagnostics.filter((d) => d.severity === "error").map((d) => [d.code, d.tensor ?? ""]).sort();
}
const docFindings = (bytes: Uint8Array) => validateDoc(openDoc(bytes)).map((f) => [f.code, f.tensor]).sort();
/** The code the reader written from the documents refuses `action` with. */
function docCode(action: () => unknown): string | null {
  try {
    action();
    return null;
  } catch (error) {
    if (error instanceof DocError) return error.code;
    throw error;
  }
}
async function libraryCode(action: () => Promise<unknown>): Promise<string | null> {
  try {
    await action();
    return null;
  } catch (error) {
    if (error instanceof B158Error) return error.code;
    throw error;
  }
}

/** Typed arrays with the same bytes (vitest's deep equality is slow on large arrays); the message names the first difference. */
function expectSameBytes(got: ArrayBufferView, want: ArrayBufferView, what: string): void {
  const a = Buffer.from(got.buffer, got.byteOffset, got.byteLength);
  const b = Buffer.from(want.buffer, want.byteOffset, want.byteLength);
  if (a.equals(b)) return;
  const at = a.findIndex((x, i) => x !== b[i]);
  expect.fail(`${what}: ${a.length} vs ${b.length} bytes, first difference at byte ${at}`);
}

/** Both readers on every tensor: the same codes, scales and effective weights, as float32 bit patterns. */
async function expectSameTensors(lib: B158File, doc: DocFile): Promise<{ ternary: Set<string>; layouts: Set<string> }> {
  expect(doc.tensors.map((t) => [t.name, t.layout, t.at])).toEqual(lib.tensors.map((t) => [t.name, t.layout, t.fileOffset]));
  const layouts = new Set<string>();
  const ternary = new Set<string>();
  for (const t of lib.tensors) {
    const ours = await lib.decodeFloat32(t.name);
    if (t.layoutParams === undefined) {
      expectSameBytes(decodePlain(doc, t.name), ours, t.name);
      continue;
    }
    layouts.add(t.layout);
    const want = await lib.decodeTernary(t.name);
    const got = decodeTernary(doc, t.name);
    expectSameBytes(got.codes, want.codes, `${t.name} codes`);
    if (typeof want.scale === "number") expect(got.scale, t.name).toBe(want.scale);
    else {
      if (typeof got.scale === "number") expect.fail(`${t.name}: one scale, not per group`);
      expect(got.scale.groupSize, t.name).toBe(want.scale.groupSize);
      expectSameBytes(got.scale.values, want.scale.values, `${t.name} scales`);
    }
    expectSameBytes(effectiveWeights(got.codes, t.shape[1]!, got.scale), ours, `${t.name} weights`);
    ternary.add(t.role);
  }
  return { ternary, layouts };
}

describe("b158-written files of every layout: both readers decode the same codes and scales", () => {
  it.each(CASES.map(([name]) => [name]))("%s", async (name) => {
    const bytes = written.get(name)!;
    const lib = await open(bytes);
    const doc = openDoc(bytes);
    expect([doc.major, doc.minor]).toEqual([lib.version.major, lib.version.minor]);
    const { ternary, layouts } = await expectSameTensors(lib, doc);
    expect(layouts.size).toBe(1);
    if (CASES.find(([n]) => n === name)![1].kind === "fake-quantized") {
      expect(lib.tensors.some((t) => t.group_size !== undefined)).toBe(true);
      expect([...ternary].sort()).toEqual(["embedding", "lm-head", "ternary-linear"]);
    }
    expect(docFindings(bytes)).toEqual([]);
    // the tensors are listed in FORMAT.md §1.9's order
    const names = doc.tensors.map((t) => t.name);
    expect([...names].sort(docNameOrder)).toEqual(names);
  });

  it("the tilings the cases cover: every TL loop runs more than once where a shape allows it", () => {
    const params = (name: string) => openDoc(written.get(name)!).tensors.filter((t) => t.layout.startsWith("tl")).map((t) => ({ shape: t.shape, BM: t.params.BM as number, BK: t.params.BK as number, bm: t.params.bm as number }));
    const tl1 = [...params("tl1 (computed tiling)"), ...params("tl1 with bm 64 (by 4)")];
    const tl2 = [...params("tl2 (computed tiling)"), ...params("tl2 with wide tails and small row tiles")];
    expect(new Set(tl1.map((p) => p.bm))).toEqual(new Set([32, 64]));
    expect(tl1.some((p) => p.shape[0]! / p.BM > 1 && p.shape[1]! / p.BK > 1 && p.BM / p.bm > 1)).toBe(true);
    const tails = new Set(tl2.map((p) => p.shape[1]! % p.BK));
    expect([0, 64, 192].every((tail) => tails.has(tail))).toBe(true);
    expect(tl2.some((p) => p.shape[0]! / p.BM > 1 && p.BM / 32 > 1 && Math.floor(p.shape[1]! / p.BK) > 1)).toBe(true);
  });
});

it("FORMAT.md §1.9's tensor order, as written from the document, is the order b158 sorts names in", () => {
  const names = ["model.layers.10.mlp", "model.layers.9.mlp", "model.norm.weight", "lm_head.weight", "model.layers.2.self_attn", "model.embed_tokens.weight", "a", "a0", "a00", "a1", "a01", "a007", "a07", "a7", "a1b", "a1.", "ab", "a!", "b", "a10", "a9", "A", "a.1.2", "a.1.10", "a.01.2", "x.90071992547409921", "x.90071992547409920", "a" + "9".repeat(400), "a1" + "0".repeat(400), "w.\u{1F600}", "w.\uFF61", "", "0", "1a"];
  for (const x of names) for (const y of names) expect(Math.sign(docNameOrder(x, y)), `${x} vs ${y}`).toBe(Math.sign(compareTensorNames(x, y)));
  expect(["model.layers.10.mlp", "lm_head.weight", "model.norm.weight", "model.layers.2.mlp", "model.embed_tokens.weight"].sort(docNameOrder)).toEqual(["lm_head.weight", "model.embed_tokens.weight", "model.layers.2.mlp", "model.layers.10.mlp", "model.norm.weight"]);
});

describe("damaged files: the reader from the documents refuses what b158 refuses, with the same code", () => {
  it.each(OPEN_DAMAGE)("%s -> %s", async (_name, damage, code) => {
    const bytes = damage(written.get("tq2_0")!);
    expect(await libraryCode(() => open(bytes))).toBe(code);
    expect(docCode(() => openDoc(bytes))).toBe(code);
  });

  const Q = "model.layers.0.self_attn.q_proj.weight";
  it.each(GROUP_DAMAGE)("%s -> %s", async (_name, change, code) => {
    const bytes = withHeader(written.get("q2_0, group_size 128")!, (h) => change((h.tensors as Record<string, unknown>[]).find((t) => t.name === Q)!));
    expect(await libraryCode(() => open(bytes))).toBe(code);
    expect(docCode(() => openDoc(bytes))).toBe(code);
  });

  /** Payload edits per layout (sha256 rewritten to match): [case, tensor, byte, value, what decoding says]. */
  const target = "model.layers.0.mlp.down_proj.weight";
  const PAYLOAD_DAMAGE: readonly (readonly [caseName: string, at: (length: number) => number, value: number, code: string | null, what: string])[] = [
    ["i2_s x86 (block 128)", () => 7, 0xff, "E_PACKED_CODE", "an I2_S code 3"],
    ["i2_s x86 (block 128)", (n) => n - 5, 0xff, null, "a nonzero byte in the 28 after the I2_S scale (not a code)"],
    ["i2_s arm (block 64)", () => 100, 0x03, "E_PACKED_CODE", "an I2_S (arm) code 3 in bits 1:0"],
    ["tq2_0", () => 66 + 40, 0x30, "E_PACKED_CODE", "a TQ2_0 code 3"],
    ["tq1_0", () => 54 + 3, 0x01, "E_PACKED_CODE", "a TQ1_0 qs byte that is not canonical"],
    ["tq1_0", () => 54 + 49, 0x02, "E_PACKED_CODE", "a TQ1_0 qh byte with a nonzero fifth digit"],
    ["q2_0", () => 18 + 2, 0xc0, "E_PACKED_CODE", "a Q2_0 code 3"],
    ["tl1 (computed tiling)", () => 1000, 0x90, "E_PACKED_CODE", "a TL1 pair index 9"],
    ["tl2 with wide tails and small row tiles", () => 5, 0xe0, "E_PACKED_CODE", "a TL2 magnitude 14 in region A"],
    // K 768, BK 288: A and S hold K3 = 576 columns, B the 192-column tail: M*K3/6 + M*K3/24 = 30720
    ["tl2 with wide tails and small row tiles", () => 30720 + 77, 0x09, "E_PACKED_CODE", "a TL2 tail pair index 9 in region B"],
    ["tl2 with wide tails and small row tiles", (n) => n - 1, 0xff, null, "a nonzero byte in TL2's padding (not a code)"],
  ];
  it.each(PAYLOAD_DAMAGE.map(([c, at, v, code, what]) => [what, c, at, v, code] as const))("%s", async (_what, caseName, at, value, code) => {
    const good = written.get(caseName)!;
    const length = openDoc(good).tensors.find((t) => t.name === target)!.length;
    const bytes = forgeB158(good, { payload: [{ tensor: target, at: at(length), value }] });
    expect(await libraryCode(async () => (await open(bytes)).decodeTernary(target))).toBe(code);
    expect(docCode(() => decodeTernary(openDoc(bytes), target))).toBe(code);
    const findings = await libraryFindings(bytes);
    expect(docFindings(bytes)).toEqual(findings);
    expect(findings).toEqual(code === null ? [] : [[code, target]]);
  });

  it("a TL2 sign bit on a zero magnitude is a code outside the alphabet", async () => {
    const good = written.get("tl2 with wide tails and small row tiles")!;
    const t = openDoc(good).tensors.find((x) => x.name === target)!;
    const [M, K] = t.shape as [number, number];
    // find a triplet of magnitude 0 in region A and set its sign bit in region S, by the documents' loops
    const bytes = good.slice(t.at, t.at + t.length);
    const K3 = K - (K % (t.params.BK as number));
    for (let byte = (M * K3) / 6; byte < (M * K3) / 6 + (M * K3) / 24; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const trial = bytes.slice();
        trial[byte] = trial[byte]! | (1 << bit);
        if (trial[byte] === bytes[byte]) continue;
        if (docCode(() => unpack("tl2", t.params, trial, M, K)) !== "E_PACKED_CODE") continue;
        const forged = forgeB158(good, { payload: [{ tensor: target, at: byte, value: trial[byte]! }] });
        expect(await libraryCode(async () => (await open(forged)).decodeTernary(target))).toBe("E_PACKED_CODE");
        expect(docFindings(forged)).toEqual(await libraryFindings(forged));
        return;
      }
    }
    expect.fail("no zero-magnitude triplet with a clear sign bit");
  });

  it("validation: the same findings for hashes, padding, scales, all-zero and non-finite payloads", async () => {
    const tq2 = written.get("tq2_0")!;
    const first = (bytes: Uint8Array, layout: string) => openDoc(bytes).tensors.find((t) => t.layout === layout)!;
    const q = first(tq2, "tq2_0");
    const norm = first(tq2, "f16") ?? first(tq2, "bf16");
    const i2s = written.get("i2_s x86 (block 128)")!;
    const i2 = first(i2s, "i2_s");
    const grouped = written.get("q2_0, group_size 128")!;
    const g = first(grouped, "q2_0");
    const cases: readonly (readonly [what: string, bytes: Uint8Array, expected: string[][]])[] = [
      ["a flipped payload byte", Object.assign(tq2.slice(), { [q.at + 3]: tq2[q.at + 3]! ^ 1 }), [["E_B158_HASH", q.name]]],
      ["a nonzero padding byte", Object.assign(i2s.slice(), { [i2.at + i2.length + 1]: 9 }), [["E_B158_PADDING", i2.name]]],
      ["a block's d that is not f16(scale)", forgeB158(tq2, { payload: [{ tensor: q.name, at: 66 * 2 + 64, value: tq2[q.at + 66 * 2 + 64]! ^ 1 }] }), [["E_B158_LAYOUT", q.name]]],
      ["the I2_S f32 that is not the header's scale", forgeB158(i2s, { payload: [{ tensor: i2.name, at: i2.length - 32, value: i2s[i2.at + i2.length - 32]! ^ 1 }] }), [["E_B158_LAYOUT", i2.name]]],
      ["a scale of 0 in the header", withHeader(tq2, (h) => { (h.tensors as Record<string, unknown>[]).find((t) => t.name === q.name)!.scale = 0; }), [["E_SCALE_INVALID", q.name]]],
      ["a negative scale in the header", withHeader(i2s, (h) => { (h.tensors as Record<string, unknown>[]).find((t) => t.name === i2.name)!.scale = -0.5; }), [["E_SCALE_INVALID", i2.name]]],
      ["a scale whose f16 is 0", withHeader(tq2, (h) => { (h.tensors as Record<string, unknown>[]).find((t) => t.name === q.name)!.scale = 1e-9; }), [["E_SCALE_INVALID", q.name]]],
      ["blocks of a group with different d", forgeB158(grouped, { payload: [{ tensor: g.name, at: 18, value: grouped[g.at + 18]! ^ 1 }] }), [["E_B158_LAYOUT", g.name]]],
      ["a group whose nonzero blocks have d = 0", forgeB158(grouped, { payload: [0, 1, 18, 19].map((at) => ({ tensor: g.name, at, value: 0 })) }), [["E_SCALE_INVALID", g.name]]],
      ["a group whose one nonzero block has a NaN d", forgeB158(grouped, { payload: [{ at: 0, value: 0 }, { at: 1, value: 0x7e }, ...Array.from({ length: 16 }, (_, i) => ({ at: 20 + i, value: 0x55 }))].map((e) => ({ tensor: g.name, ...e })) }), [["E_SCALE_INVALID", g.name]]],
      ["a group whose two nonzero blocks both have a NaN d", forgeB158(grouped, { payload: [0, 18].flatMap((at) => [{ at, value: 0 }, { at: at + 1, value: 0x7e }]).map((e) => ({ tensor: g.name, ...e })) }), [["E_B158_LAYOUT", g.name]]],
      ["every code 0", allZeroTq2(tq2, q.name), [["E_ALL_ZERO", q.name]]],
      ["a NaN in a float payload", forgeB158(tq2, { payload: [{ tensor: norm.name, at: 0, value: 0xff }, { tensor: norm.name, at: 1, value: 0x7f }] }), [["E_NONFINITE", norm.name]]],
    ];
    for (const [what, bytes, expected] of cases) {
      expect(await libraryFindings(bytes), what).toEqual(expected);
      expect(docFindings(bytes), what).toEqual(expected);
    }
  });
});

/** The tq2_0 file with `name`'s payload made all code 0 (d 0), its sha256 rewritten. */
function allZeroTq2(bytes: Uint8Array, name: string): Uint8Array {
  const t = openDoc(bytes).tensors.find((x) => x.name === name)!;
  const out = bytes.slice();
  for (let i = 0; i < t.length; i++) out[t.at + i] = i % 66 < 64 ? 0x55 : 0;
  const sha256 = createHash("sha256").update(out.subarray(t.at, t.at + t.length)).digest("hex");
  return withHeader(out, (h) => {
    (h.tensors as Record<string, unknown>[]).find((x) => x.name === name)!.sha256 = sha256;
  });
}

describe("upstream files (test/vectors): the reader from the documents decodes what bitnet.cpp and llama.cpp wrote", () => {
  const vector = async (path: string) => new Uint8Array(await readFile(fileURLToPath(new URL(`./vectors/${path}`, import.meta.url))));
  const VECTORS: readonly (readonly [file: string, layout: string, params: Record<string, number>, input: string, M: number, K: number])[] = [
    ["bitnet/i2s_x86_256x256.bin", "i2_s", { block_size: 128 }, "bitnet/ternary_256x256.i8", 256, 256],
    ["bitnet/i2s_arm_256x256.bin", "i2_s", { block_size: 64 }, "bitnet/ternary_256x256.i8", 256, 256],
    ["bitnet/tl1_256x256_BM128_BK64_bm32.bin", "tl1", { BM: 128, BK: 64, bm: 32 }, "bitnet/ternary_256x256.i8", 256, 256],
    ["bitnet/tl1_256x256_BM256_BK128_bm64.bin", "tl1", { BM: 256, BK: 128, bm: 64 }, "bitnet/ternary_256x256.i8", 256, 256],
    ["bitnet/tl2_256x256_BM128_BK96_bm32.bin", "tl2", { BM: 128, BK: 96, bm: 32 }, "bitnet/ternary_256x256.i8", 256, 256],
    ["bitnet/tl2_128x384_BM64_BK96_bm32.bin", "tl2", { BM: 64, BK: 96, bm: 32 }, "bitnet/ternary_128x384_seed777.i8", 128, 384],
    ["tq/tq1_0_256x256.bin", "tq1_0", {}, "bitnet/ternary_256x256.i8", 256, 256],
    ["tq/tq2_0_256x256.bin", "tq2_0", {}, "bitnet/ternary_256x256.i8", 256, 256],
    ["q2_0/q2_0_256x256.bin", "q2_0", {}, "bitnet/ternary_256x256.i8", 256, 256],
  ];
  it.each(VECTORS)("%s", async (file, layout, params, input, M, K) => {
    const decoded = unpack(layout, params, await vector(file), M, K);
    expectSameBytes(decoded.codes, await vector(input), file);
    // the scale each holds: 53/1024, as f32 (I2_S) or as every block's f16 d
    const SCALE = 53 / 1024;
    if (layout === "i2_s") expect((decoded as { f32?: number }).f32).toBe(SCALE);
    if (decoded.d !== undefined) expect(new Set(decoded.d)).toEqual(new Set([SCALE]));
  });
});

describe("the documents' worked examples", () => {
  /** `xxd`-style lines `OFFSET  hex bytes`, with `*  zero bytes up to 0xNNNN` lines between. */
  function parseDump(text: string): Map<number, number[]> {
    const lines = new Map<number, number[]>();
    for (const line of text.split("\n")) {
      const m = /^([0-9a-f]{8})  ((?:[0-9a-f]{2} ?)+)$/.exec(line.trim());
      if (m) lines.set(parseInt(m[1]!, 16), m[2]!.trim().split(/ +/).map((b) => parseInt(b, 16)));
    }
    return lines;
  }

  it("FORMAT.md §4.2: the whole file, assembled from the dump, read by both readers", async () => {
    const format = await docs("FORMAT.md");
    const block = /```b158-example\n([\s\S]*?)```/.exec(format)![1]!;
    const size = 4164;
    expect(format).toContain(`It is ${size}\nbytes`);
    const bytes = new Uint8Array(size);
    for (const [at, values] of parseDump(block)) bytes.set(values, at);
    // every byte the dump leaves out is zero: the "*" lines say so, and the file is all there
    const lib = await open(bytes, "example.b158");
    const doc = openDoc(bytes);
    const json = JSON.parse(/The header decodes to:\n\n```json\n([\s\S]*?)```/.exec(format)![1]!) as Record<string, unknown>;
    const header = decodeHeader(bytes.subarray(64, 64 + u64(bytes, 16))) as Record<string, unknown>;
    expect({ ...header, files: {} }).toEqual(json);
    expect(doc.header).toEqual(json);
    // b158's writer writes these header bytes for this header (FORMAT.md §1.2: one encoding)
    expect(Buffer.from(encodeHeader(json as unknown as B158Header))).toEqual(Buffer.from(bytes.subarray(64, 64 + u64(bytes, 16))));
    await expectSameTensors(lib, doc);
    const a = decodeTernary(doc, "a.weight");
    expect(Array.from(a.codes)).toEqual(Array.from({ length: 64 }, (_, k) => (k % 3) - 1));
    expect(a.scale).toBe(0.5);
    expect(Array.from(decodePlain(doc, "b.weight"))).toEqual([1, -2]);
    expect(await lib.verify()).toEqual([]);
    expect(validateDoc(doc)).toEqual([]);
  });

  it("layouts.md: each example's bytes are what b158 packs, and the reader from the documents decodes them back", async () => {
    const layouts = await docs("layouts.md");
    const blocks = [...layouts.matchAll(/```b158-layout-example\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const seen = new Set<string>();
    for (const block of blocks) {
      const words = block.split("\n")[0]!.trim().split(/\s+/);
      const fields = Object.fromEntries(Array.from({ length: words.length / 2 }, (_, i) => [words[2 * i]!, words[2 * i + 1]!]));
      const [M, K, length] = [Number(fields.M), Number(fields.K), Number(fields.length)];
      const layout = fields.layout!;
      const params: Record<string, number | string> = {};
      for (const key of ["block_size", "BM", "BK", "bm"]) if (fields[key] !== undefined) params[key] = Number(fields[key]);
      if (fields.variant !== undefined) params.variant = fields.variant;
      const lib: LayoutParams =
        layout === "i2_s" ? { layout, blockSize: params.block_size as 128 | 64, variant: params.variant as "x86" | "arm" }
        : layout === "tl1" || layout === "tl2" ? { layout, BM: params.BM as number, BK: params.BK as number, bm: params.bm as number, tilingSource: "computed" }
        : ({ layout, blockSize: params.block_size } as LayoutParams);
      const codes = Int8Array.from({ length: M * K }, (_, i) => (i % 3) - 1);
      const packed = packLayout(lib, codes, [M, K], 0.5);
      expect(packed.length, block).toBe(length);
      const dump = parseDump(block);
      expect(dump.size, block).toBeGreaterThan(0);
      for (const [at, values] of dump) expect(Array.from(packed.subarray(at, at + values.length)), `${layout} at 0x${at.toString(16)}`).toEqual(values);
      expectSameBytes(unpack(layout, params, packed, M, K).codes, codes, block);
      seen.add(`${layout} ${fields.variant ?? ""}`.trim());
    }
    expect([...seen].sort()).toEqual(["i2_s arm", "i2_s x86", "q2_0", "tl1", "tl2", "tq1_0", "tq2_0"]);
  });
});
