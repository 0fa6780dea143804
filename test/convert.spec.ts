import { appendFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { B158Error } from "../src/errors.js";
import { openB158File } from "../src/formats/b158/read.js";
import { LAYOUT_IDS, type LayoutId } from "../src/pack/layouts.js";
import { ternarize } from "../src/pack/ternarize.js";
import { getValidator } from "../src/schemas.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-convert-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Families whose exact codes the fixture knows: packed ones, and latent ones made of ternary x scale. */
const FAMILIES: [FixtureFamily, "ternary" | "random"][] = [
  ["bitnet-1bitllm", "ternary"],
  ["bitnet-2b4t-bf16", "ternary"],
  ["bitnet-2b4t-packed", "ternary"],
  ["llama-bitnet-packed", "ternary"],
];

describe("convert: round trip for every family x layout", () => {
  const fixtures = new Map<FixtureFamily, Awaited<ReturnType<typeof generateCheckpoint>>>();
  beforeAll(async () => {
    for (const [family, weights] of FAMILIES) {
      fixtures.set(family, await generateCheckpoint({ family, dir: join(root, `src-${family}`), weights, dims: { layers: 1 }, shards: family === "bitnet-1bitllm" ? 2 : 1 }));
    }
  });

  const cases = FAMILIES.flatMap(([family]) => LAYOUT_IDS.map((layout) => [family, layout] as [FixtureFamily, LayoutId]));
  it.each(cases)("%s -> %s decodes to the exact codes and scales", async (family, layout) => {
    const fixture = fixtures.get(family)!;
    const output = join(root, `${family}-${layout}.b158`);
    const summary = await convertCheckpoint(fixture.dir, { layout, output, threads: 0 });
    expect(summary.validated).toBe(true);
    const file = await openB158File(output);
    try {
      expect(await file.verify()).toEqual([]);
      const ternary = file.tensors.filter((t) => t.role === "ternary-linear");
      expect(ternary).toHaveLength(7);
      for (const t of ternary) {
        expect(t.layout).toBe(layout);
        const { codes, scale } = await file.decodeTernary(t.name);
        const expected = fixture.ternary[t.name]!;
        expect(codes).toEqual(expected.codes);
        expect(scale).toBe(Math.fround(expected.scale as number));
      }
      // norms are kept exact, in the source dtype
      const norm = file.tensors.find((t) => t.role === "norm")!;
      expect(norm.layout).toBe(norm.source_dtype.toLowerCase());
      // the config and tokenizer travel with the weights
      expect(Object.keys(file.header.files)).toContain("config.json");
      expect(new TextDecoder().decode(file.header.files["config.json"])).toBe(await readFile(join(fixture.dir, "config.json"), "utf8"));
    } finally {
      await file.close();
    }
  });

  it("a generic model with --ternarize: the globbed tensors are ternarized exactly as the rule says", async () => {
    const fixture = await generateCheckpoint({ family: "llama-generic", dir: join(root, "generic"), dims: { layers: 1 } });
    const output = join(root, "generic.b158");
    const summary = await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, ternarize: ["model.layers.*.mlp.*_proj.weight"] });
    expect(summary.family).toBe("generic");
    expect(summary.warnings.some((w) => w.code === "W_LOSSY_TERNARIZATION")).toBe(true);
    const file = await openB158File(output);
    try {
      const up = file.tensor("model.layers.0.mlp.up_proj.weight");
      const source = await readFile(join(fixture.dir, "model.safetensors"));
      const headerLength = Number(source.readBigUInt64LE(0));
      const header = JSON.parse(source.subarray(8, 8 + headerLength).toString());
      const [begin, end] = header["model.layers.0.mlp.up_proj.weight"].data_offsets;
      const raw = new Uint8Array(source.subarray(8 + headerLength + begin, 8 + headerLength + end));
      const want = ternarize(raw, "F16");
      const got = await file.decodeTernary(up.name);
      expect(got.codes).toEqual(want.codes);
      expect(got.scale).toBe(want.scale.scale);
      expect(file.tensor("model.layers.0.self_attn.q_proj.weight").layout).toBe("f16"); // not globbed: kept
    } finally {
      await file.close();
    }
  });

  it("--embeddings and --float-dtype convert floats; norms stay exact", async () => {
    const fixture = fixtures.get("bitnet-2b4t-packed")!;
    const output = join(root, "floats.b158");
    await convertCheckpoint(fixture.dir, { layout: "i2_s", output, threads: 0, embeddings: "f16", floatDtype: "f32" });
    const file = await openB158File(output);
    try {
      expect(file.tensor("model.embed_tokens.weight").layout).toBe("f16");
      expect(file.tensor("model.norm.weight").layout).toBe("bf16");
    } finally {
      await file.close();
    }
  });

  it("ineligible shapes fail with E_LAYOUT_SHAPE naming the tensor, or fall back with --fallback", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "3b-like"), dims: { layers: 1, hidden: 320, intermediate: 864, heads: 4, kvHeads: 4 } });
    const output = join(root, "3b.b158");
    await expect(convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0 })).rejects.toMatchObject({ code: "E_LAYOUT_SHAPE" });
    // an unknown layout name is a coded usage error, not a TypeError from deep inside
    await expect(convertCheckpoint(fixture.dir, { layout: "tq3_0" as never, output, threads: 0 })).rejects.toMatchObject({ code: "E_LAYOUT_UNKNOWN", exitCode: 2 });
    await expect(readdir(root)).resolves.not.toContain("3b.b158");
    // every ternary tensor would fall back: a float file under a ternary layout's name, unless asked for
    await expect(convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, fallback: "f16" })).rejects.toMatchObject({ code: "E_LAYOUT_SHAPE", message: expect.stringContaining("no ternary tensor fits tq2_0") });
    await expect(readdir(root)).resolves.not.toContain("3b.b158");
    const summary = await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, fallback: "f16", allowNoTernary: true });
    expect(summary.fallbacks).toHaveLength(7);
    expect(summary.warnings.filter((w) => w.code === "W_FALLBACK")).toHaveLength(7);
    const file = await openB158File(output);
    try {
      const down = file.tensor("model.layers.0.mlp.down_proj.weight");
      expect(down.layout).toBe("f16");
      expect(down.shape).toEqual([320, 864]);
    } finally {
      await file.close();
    }
  });
});

describe("convert: atomic output", () => {
  it("refuses to overwrite without force, and replaces with it", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "force-src"), dims: { layers: 1 } });
    const output = join(root, "force.b158");
    await convertCheckpoint(fixture.dir, { layout: "tq1_0", output, threads: 0 });
    await expect(convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0 })).rejects.toMatchObject({ code: "E_OUTPUT_EXISTS" });
    await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, force: true });
    const file = await openB158File(output);
    expect(file.header.provenance.options.layout).toBe("tq2_0");
    await file.close();
  });

  it("an abort (Ctrl-C) mid-run leaves neither the target nor a temp file", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "abort-src"), dims: { layers: 2 } });
    const dir = join(root, "abort-out");
    await mkdir(dir);
    const abort = new AbortController();
    const error = await convertCheckpoint(fixture.dir, { layout: "i2_s", output: join(dir, "x.b158"), threads: 0, signal: abort.signal, onProgress: () => abort.abort() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(B158Error);
    expect((error as B158Error).code).toBe("E_INTERRUPTED");
    expect((error as B158Error).exitCode).toBe(130);
    expect(await readdir(dir)).toEqual([]);
  });

  it("a failing write (the output directory removed mid-run) leaves no file and reports E_IO", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "fail-src"), dims: { layers: 2 } });
    const dir = join(root, "vanishing");
    await mkdir(dir);
    let removed = false;
    const error = await convertCheckpoint(fixture.dir, {
      layout: "tq2_0",
      output: join(dir, "x.b158"),
      threads: 0,
      onProgress: () => {
        if (!removed) {
          removed = true;
          void rm(dir, { recursive: true, force: true });
        }
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(B158Error);
    expect((error as B158Error).code).toBe("E_IO");
    await expect(readdir(dir)).rejects.toThrow();
  });

  it("a tokenizer.json changed mid-run is E_SOURCE_CHANGED naming it, and leaves no file (embedded files stream into the header at the end)", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "changing-src"), dims: { layers: 1 } });
    const tokenizer = join(fixture.dir, "tokenizer.json");
    await writeFile(tokenizer, JSON.stringify({ version: "1.0", model: { type: "BPE", vocab: {}, merges: [] } }));
    const dir = join(root, "changing-out");
    await mkdir(dir);
    const error = await convertCheckpoint(fixture.dir, { layout: "tq2_0", output: join(dir, "x.b158"), threads: 0, onPhase: ({ phase }) => phase === "converting" && appendFileSync(tokenizer, " ") }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(B158Error);
    expect((error as B158Error).code).toBe("E_SOURCE_CHANGED");
    expect((error as B158Error).message).toContain("tokenizer.json");
    expect(await readdir(dir)).toEqual([]);
    // unchanged, the same file converts, and the header holds its bytes
    const output = join(dir, "y.b158");
    await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0 });
    const file = await openB158File(output);
    try {
      expect(Buffer.from(file.header.files["tokenizer.json"]!)).toEqual(await readFile(tokenizer));
    } finally {
      await file.close();
    }
  });

  it("the header validates against its schema, and records the options without times or paths", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "hdr-src"), dims: { layers: 1 } });
    const output = join(root, "hdr.b158");
    await convertCheckpoint(fixture.dir, { layout: "tl2", output, threads: 0 });
    const file = await openB158File(output);
    try {
      expect(file.header.provenance.source).toEqual({ kind: "local" });
      expect(file.header.provenance.options).toMatchObject({ layout: "tl2", i2s_variant: "x86", fallback: null });
      expect(JSON.stringify({ ...file.header, files: {} })).not.toContain(root);
      const forSchema = { ...file.header, files: Object.fromEntries(Object.entries(file.header.files).map(([k, v]) => [k, v.byteLength])) };
      expect(getValidator("b158-header")(forSchema)).toBe(true);
      expect(file.tensors.every((t) => (t.fileOffset - file.dataOffset) % 64 === 0)).toBe(true);
      expect(file.dataOffset % 4096).toBe(0);
      const tl2 = file.tensors.find((t) => t.layout === "tl2")!;
      expect(tl2.params).toMatchObject({ bm: 32, tiling_source: "computed" });
    } finally {
      await file.close();
    }
  });
});
