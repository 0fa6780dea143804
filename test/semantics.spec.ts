import { execFile } from "node:child_process";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureResult } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { validateB158 } from "../src/convert/validate-b158.js";
import { openB158File } from "../src/formats/b158/read.js";
import { fromF16Bits, toF16Bits } from "../src/pack/float16.js";
import { applyScale, type TensorScale } from "../src/pack/scales.js";
import { inspectB158 } from "../src/report/b158-report.js";
import { inspectCheckpoint, validateCheckpoint } from "../src/report/checkpoint-report.js";
import { getValidator } from "../src/schemas.js";

/**
 * Issue 12 item 2 and issue 14: a ternary linear is converted by what the source's framework does
 * with it (docs/ternarization.md), decided from the config, with a coded warning and an explicit
 * override (--weights) when the values disagree; fake-quantized sources are read exactly, with their
 * scale granularity, and kept per group where the layout can hold it.
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-semantics-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const repo = fileURLToPath(new URL("..", import.meta.url));
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

/** The effective weights the fixture's framework computes with, for a .b158 tensor. */
async function expectTernary(path: string, fixture: FixtureResult, tensors: readonly string[], pick: (entry: FixtureResult["ternary"][string]) => TensorScale): Promise<void> {
  const file = await openB158File(path);
  try {
    for (const name of tensors) {
      const { codes, scale } = await file.decodeTernary(name);
      const expected = fixture.ternary[name]!;
      expect(codes, name).toEqual(expected.codes);
      expect(scale, name).toEqual(pick(expected));
    }
  } finally {
    await file.close();
  }
}

describe("online semantics (2B-4T-bf16: quantization_mode online) with weights that are exactly ternary x c", () => {
  let fixture: FixtureResult;
  let linears: string[];
  beforeAll(async () => {
    fixture = await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "online"), weights: "ternary", dims: { layers: 1 } });
    linears = Object.keys(fixture.ternary);
  });

  it("inspect follows the config (online) and warns W_WEIGHTS_LOOK_QUANTIZED with the tensor and the override", async () => {
    const report = await inspectCheckpoint(fixture.dir);
    expect(getValidator("inspect")(report)).toBe(true);
    expect(report.family).toMatchObject({ id: "bitnet-latent", semantics: "online", semanticsSource: "config", sample: { verdict: "ternary", tensor: "model.layers.0.mlp.down_proj.weight" } });
    const warning = report.diagnostics.find((d) => d.code === "W_WEIGHTS_LOOK_QUANTIZED")!;
    expect(warning).toMatchObject({ severity: "warning", tensor: "model.layers.0.mlp.down_proj.weight" });
    expect(warning.message).toContain("--weights quantized");
    expect(report.tensors.filter((t) => t.role === "ternary-linear").every((t) => t.action === "ternarize" && t.semantics === "online")).toBe(true);
  });

  it("convert gives every linear c x p, what the framework computes (not c), and says why", async () => {
    const output = join(root, "online.b158");
    const summary = await convertCheckpoint(fixture.dir, { layout: "i2_s", output, threads: 0 });
    expect(summary.warnings.some((w) => w.code === "W_WEIGHTS_LOOK_QUANTIZED")).toBe(true);
    await expectTernary(output, fixture, linears, (e) => e.scale);
    for (const name of linears) expect(fixture.ternary[name]!.scale).not.toBe(fixture.ternary[name]!.stored);
    const file = await openB158File(output);
    await file.close();
    expect(file.version).toEqual({ major: 1, minor: 0 }); // nothing 1.1 in it: written as 1.0
  });

  it("--weights quantized reads the same tensors as stored: scale c exactly, recorded in the provenance (format 1.1)", async () => {
    const output = join(root, "online-quantized.b158");
    const summary = await convertCheckpoint(fixture.dir, { layout: "tq2_0", output, threads: 0, weights: "quantized" });
    expect(summary.warnings.some((w) => w.code === "W_WEIGHTS_LOOK_QUANTIZED")).toBe(false);
    await expectTernary(output, fixture, linears, (e) => e.stored!);
    const file = await openB158File(output);
    await file.close();
    expect(file.header.provenance.options.weights).toBe("quantized");
    expect(file.version).toEqual({ major: 1, minor: 1 });
  });

  it("through the CLI: the warning by default, and the override flag", async () => {
    const plain = await cli(["convert", fixture.dir, "-o", join(root, "cli-online.b158"), "--layout", "tq2_0", "--threads", "0"]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain("W_WEIGHTS_LOOK_QUANTIZED");
    const forced = await cli(["convert", fixture.dir, "-o", join(root, "cli-quantized.b158"), "--layout", "tq2_0", "--threads", "0", "--weights", "quantized", "--json"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout).warnings.map((w: { code: string }) => w.code)).not.toContain("W_WEIGHTS_LOOK_QUANTIZED");
    await expectTernary(join(root, "cli-quantized.b158"), fixture, linears, (e) => e.stored!);
  });
});

describe("stored semantics forced on latent weights", () => {
  let dir: string;
  beforeAll(async () => {
    dir = (await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: join(root, "latent"), dims: { layers: 1 } })).dir;
  });

  it("inspect names the flag as the source; warns W_WEIGHTS_LOOK_LATENT; convert fails with E_STORED_NOT_TERNARY naming the tensor, never re-quantizing", async () => {
    const report = await inspectCheckpoint(dir, { weights: "quantized" });
    expect(report.family).toMatchObject({ semantics: "stored", semanticsSource: "flag" });
    expect(report.diagnostics.map((d) => d.code)).toContain("W_WEIGHTS_LOOK_LATENT");
    await expect(convertCheckpoint(dir, { layout: "i2_s", output: join(root, "latent.b158"), threads: 0, weights: "quantized" })).rejects.toMatchObject({
      code: "E_STORED_NOT_TERNARY",
      message: expect.stringMatching(/tensor "model\.layers\.0\.[a-z_.]+_proj\.weight"/),
    });
  });

  it("validate --weights quantized reports every linear that is not ternary x scale", async () => {
    const report = await validateCheckpoint(dir, { weights: "quantized" });
    expect(getValidator("validate")(report)).toBe(true);
    expect(report.ok).toBe(false);
    expect(report.diagnostics.filter((d) => d.code === "E_STORED_NOT_TERNARY")).toHaveLength(7);
  });
});

describe("fake-quantized sources (a plain Llama / Qwen3 config, weights exactly ternary x scale)", () => {
  it.each([
    ["tensor", undefined],
    ["row", 256],
    [64, 64],
    [128, 128],
  ] as const)("granularity %s: detected from a bounded sample, shown by inspect, kept exactly in q2_0", async (granularity, groupSize) => {
    const fixture = await generateCheckpoint({ family: "llama-fake-quantized", dir: join(root, `fake-${granularity}`), granularity, dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(getValidator("inspect")(report)).toBe(true);
    expect(report.family).toMatchObject({ id: "fake-quantized", number: 6, semantics: "stored", semanticsSource: "values", sample: { verdict: "ternary" } });
    expect(report.family.evidence.join()).toContain(granularity === "tensor" ? "per tensor" : granularity === "row" ? "per row" : `per group of ${granularity}`);
    const linears = report.tensors.filter((t) => t.role === "ternary-linear");
    expect(linears).toHaveLength(7);
    for (const t of linears) expect(t).toMatchObject({ action: "extract", semantics: "stored" });
    // the embedding and head are float in the source: they stay float
    expect(report.tensors.find((t) => t.name === "lm_head.weight")).toMatchObject({ role: "lm-head", action: "keep" });

    const output = join(root, `fake-${granularity}.b158`);
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output, threads: 0 });
    await expectTernary(output, fixture, Object.keys(fixture.ternary), (e) => e.scale);
    const file = await openB158File(output);
    try {
      const q = file.tensor("model.layers.0.self_attn.q_proj.weight");
      expect(q.group_size).toBe(granularity === "row" ? 256 : groupSize);
      expect(q.scale === undefined).toBe(groupSize !== undefined);
      expect(file.version.minor).toBe(1);
      // decodeFloat32 applies each group's scale: the source's weights exactly
      const expected = fixture.ternary[q.name]!;
      expect(await file.decodeFloat32(q.name)).toEqual(applyScale(expected.codes, 256, expected.scale));
    } finally {
      await file.close();
    }
    expect((await validateB158(output)).ok).toBe(true);
    const b158Report = await inspectB158(output);
    expect(getValidator("inspect-b158")(b158Report)).toBe(true);
    expect(b158Report.tensors.find((t) => t.name === "model.layers.0.mlp.up_proj.weight")!.granularity).toBe(
      groupSize === undefined ? "per tensor" : granularity === "row" ? "per row (G = K = 256)" : `per group of ${groupSize} along K`,
    );
  });

  it("scales a layout cannot hold: E_LAYOUT_SCALES names the tensor and the layouts that can (never averaged); --fallback keeps them float", async () => {
    const fixture = await generateCheckpoint({ family: "llama-fake-quantized", dir: join(root, "fake-g128-tq"), granularity: 128, dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    const q = report.tensors.find((t) => t.name === "model.layers.0.self_attn.q_proj.weight")!;
    expect(q.layouts!.tq2_0).toMatchObject({ eligible: false, rule: "G % 256 == 0" });
    expect(q.layouts!.i2_s).toMatchObject({ eligible: false, rule: "one scale per tensor" });
    expect(q.layouts!.q2_0.eligible).toBe(true);
    for (const layout of ["tq2_0", "i2_s"] as const) {
      await expect(convertCheckpoint(fixture.dir, { layout, output: join(root, `g128-${layout}.b158`), threads: 0 })).rejects.toMatchObject({
        code: "E_LAYOUT_SCALES",
        message: expect.stringContaining("Layouts that can: q2_0"),
      });
    }
    const summary = await convertCheckpoint(fixture.dir, { layout: "tq2_0", output: join(root, "g128-fallback.b158"), threads: 0, fallback: "f16", allowNoTernary: true });
    expect(summary.fallbacks).toHaveLength(7);
    // validate reads every stored tensor in full: all exactly ternary x scale
    const validation = await validateCheckpoint(fixture.dir);
    expect(getValidator("validate")(validation)).toBe(true);
    expect(validation).toMatchObject({ ok: true, family: "fake-quantized" });
  });

  it("a tensor whose own granularity the layout cannot hold fails at conversion, naming it (the sample said per row)", async () => {
    const fixture = await generateCheckpoint({ family: "llama-fake-quantized", dir: join(root, "fake-mixed"), granularity: "row", dims: { layers: 1 } });
    // rewrite up_proj (not the sampled down_proj) with a second scale in the second half of row 0
    const name = "model.layers.0.mlp.up_proj.weight";
    const { codes, scale } = fixture.ternary[name]!;
    const rowScale = (scale as { values: Float32Array }).values[0]!;
    const other = rowScale === 40 / 1024 ? 41 / 1024 : 40 / 1024;
    const bits = Uint16Array.from({ length: 128 }, (_, i) => toF16Bits(codes[128 + i]! * other));
    await patchTensor(fixture.dir, name, 2 * 128, new Uint8Array(bits.buffer));
    await expect(convertCheckpoint(fixture.dir, { layout: "tq2_0", output: join(root, "mixed.b158"), threads: 0 })).rejects.toMatchObject({
      code: "E_LAYOUT_SCALES",
      message: expect.stringContaining(name),
    });
    expect((await convertCheckpoint(fixture.dir, { layout: "q2_0", output: join(root, "mixed-q2.b158"), threads: 0 })).validated).toBe(true);
  });

  it("Ternary-Bonsai-style Qwen3 (g128, ternary embedding and head): kept ternary when the source is; --embeddings f16 keeps them float", async () => {
    const fixture = await generateCheckpoint({ family: "qwen3-fake-quantized", dir: join(root, "bonsai"), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(report.family.id).toBe("fake-quantized");
    for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) expect(report.tensors.find((t) => t.name === name)).toMatchObject({ action: "extract", semantics: "stored", groupSize: 128 });
    const output = join(root, "bonsai.b158");
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output, threads: 0 });
    await expectTernary(output, fixture, Object.keys(fixture.ternary), (e) => e.scale);
    const file = await openB158File(output);
    await file.close();
    expect(file.tensor("model.embed_tokens.weight")).toMatchObject({ role: "embedding", layout: "q2_0", group_size: 128 });
    expect(file.tensor("lm_head.weight")).toMatchObject({ role: "lm-head", layout: "q2_0", group_size: 128 });
    expect(file.tensor("model.layers.0.self_attn.q_norm.weight").layout).toBe("f16");
    // real worker threads (the CLI runs the built dist/) move group scales between threads: the same bytes
    const threaded = join(root, "bonsai-threads.b158");
    const run = await cli(["convert", fixture.dir, "-o", threaded, "--layout", "q2_0", "--threads", "2"]);
    expect(run.code, run.stderr).toBe(0);
    expect(Buffer.compare(await readFile(threaded), await readFile(output))).toBe(0);

    const floatHeads = join(root, "bonsai-f16-heads.b158");
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output: floatHeads, threads: 0, embeddings: "f16" });
    const plain = await openB158File(floatHeads);
    await plain.close();
    expect(plain.tensor("model.embed_tokens.weight").layout).toBe("f16");
  });

  it("--weights latent re-quantizes them with absmean, as the user asked", async () => {
    const fixture = await generateCheckpoint({ family: "llama-fake-quantized", dir: join(root, "fake-latent"), granularity: "tensor", dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir, { weights: "latent" });
    expect(report.family).toMatchObject({ id: "fake-quantized", semantics: "online", semanticsSource: "flag" });
    const output = join(root, "fake-latent.b158");
    await convertCheckpoint(fixture.dir, { layout: "i2_s", output, threads: 0, weights: "latent" });
    const file = await openB158File(output);
    try {
      const t = file.tensor("model.layers.0.mlp.gate_proj.weight");
      const c = fixture.ternary[t.name]!.scale as number;
      const p = fixture.ternary[t.name]!.codes.filter((x) => x !== 0).length / fixture.ternary[t.name]!.codes.length;
      expect(t.scale).toBeCloseTo(c * p, 6);
      expect(file.header.provenance.options.weights).toBe("latent");
    } finally {
      await file.close();
    }
  });

  it("a plain float model with random weights stays generic: nothing ternarized without --ternarize", async () => {
    const fixture = await generateCheckpoint({ family: "llama-generic", dir: join(root, "generic"), dims: { layers: 1 } });
    const report = await inspectCheckpoint(fixture.dir);
    expect(report.family).toMatchObject({ id: "generic", semantics: null, sample: { verdict: "latent" } });
    expect(report.tensors.some((t) => t.layouts !== undefined)).toBe(false);
    expect(report.diagnostics.map((d) => d.code)).toContain("W_GENERIC_NO_TERNARIZE");
  });
});

describe("q2_0 holds shapes TQ cannot (K % 64 == 0)", () => {
  it("a 1bitLLM-style model with hidden 320 and intermediate 640: q2_0 converts losslessly, tq2_0 refuses the shape", async () => {
    const fixture = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "k320"), weights: "ternary", dims: { layers: 1, hidden: 320, intermediate: 640, heads: 4, kvHeads: 4 } });
    const output = join(root, "k320.b158");
    await convertCheckpoint(fixture.dir, { layout: "q2_0", output, threads: 0 });
    const file = await openB158File(output);
    try {
      for (const [name, { codes, scale }] of Object.entries(fixture.ternary)) {
        const decoded = await file.decodeTernary(name);
        expect(decoded.codes).toEqual(codes);
        expect(decoded.scale).toBe(scale);
        // the payload's d is f16(scale), first in each 18-byte block
        const payload = await file.readPayload(name);
        expect(fromF16Bits(payload[0]! | (payload[1]! << 8))).toBe(fromF16Bits(toF16Bits(scale as number)));
      }
    } finally {
      await file.close();
    }
    await expect(convertCheckpoint(fixture.dir, { layout: "tq2_0", output: join(root, "k320-tq.b158"), threads: 0 })).rejects.toMatchObject({ code: "E_LAYOUT_SHAPE" });
  });
});

/** Overwrites bytes of a tensor in a fixture's model.safetensors, at `offset` within the tensor. */
async function patchTensor(dir: string, name: string, offset: number, bytes: Uint8Array): Promise<void> {
  const handle = await open(join(dir, "model.safetensors"), "r+");
  try {
    const head = new Uint8Array(8);
    await handle.read(head, 0, 8, 0);
    const n = Number(new DataView(head.buffer).getBigUint64(0, true));
    const json = new Uint8Array(n);
    await handle.read(json, 0, n, 8);
    const entry = JSON.parse(new TextDecoder().decode(json))[name] as { data_offsets: [number, number] };
    await handle.write(bytes, 0, bytes.byteLength, 8 + n + entry.data_offsets[0] + offset);
  } finally {
    await handle.close();
  }
}
