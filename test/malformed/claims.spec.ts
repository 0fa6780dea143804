import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { resolveSource } from "../../src/checkpoint/resolve.js";
import { buildPlan } from "../../src/model/plan.js";
import { inspectB158 } from "../../src/report/b158-report.js";
import { inspectCheckpoint } from "../../src/report/checkpoint-report.js";
import { inspectGguf, validateGgufReport } from "../../src/report/gguf-report.js";
import { renderB158Report } from "../../src/report/render-b158.js";
import { renderCheckpointReport } from "../../src/report/render-checkpoint.js";
import { renderGgufReport } from "../../src/report/render-gguf.js";
import { buildGguf, kv } from "../support/build-gguf.js";
import { buildSafetensors } from "../support/build-safetensors.js";
import { manyTensorB158, manyTensorCheckpoint, manyTensorGguf } from "../support/many-tensors.js";
import { runCli } from "../support/run-cli.js";

/**
 * Work, memory and output follow what a file holds, never what it claims: a 300-byte GGUF whose
 * block_count is 2^32 - 1, a config.json with 4 billion layers beside one tensor, and files with
 * 150,000 tensors (well under the documented limit of 1,000,000), through the library and the CLI.
 */

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-claims-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A llama GGUF with two tensors whose block_count claims `blocks` layers. */
function claimingGguf(blocks: number): Uint8Array {
  return buildGguf({
    kvs: [
      kv.str("general.architecture", "llama"),
      kv.u32("llama.block_count", blocks),
      kv.u32("llama.embedding_length", 8),
      kv.u32("llama.feed_forward_length", 8),
      kv.u32("llama.context_length", 8),
      kv.u32("llama.attention.head_count", 1),
      kv.arr("tokenizer.ggml.tokens", "string", ["a", "b"]),
    ],
    tensors: [
      { name: "token_embd.weight", ne: [8, 2], type: "F32" },
      { name: "blk.5.attn_q.weight", ne: [8, 8], type: "F32" },
    ],
  });
}

/** A heap cap for CLI runs: a command that sizes its work by a claim fails fast instead of swapping. */
const SMALL_HEAP = ["--max-old-space-size=192"];

describe("GGUF block_count is a claim, not a loop bound", () => {
  it.each([242_932, 4_294_967_295])("block_count %i: a handful of diagnostics, each naming what the file lacks", async (blocks) => {
    const path = join(root, `blocks-${blocks}.gguf`);
    await writeFile(path, claimingGguf(blocks));
    const report = await inspectGguf(path);
    const missing = report.diagnostics.filter((d) => d.code === "E_GGUF_MISSING_TENSOR");
    // output_norm, the 8 other parts of block 5, and the two runs of blocks holding nothing
    expect(missing.map((d) => d.tensor)).toEqual(["output_norm.weight", ...["attn_norm", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"].map((p) => `blk.5.${p}.weight`), "blk.0.attn_norm.weight", "blk.6.attn_norm.weight"]);
    expect(missing.at(-1)!.message).toContain(`blocks 6-${blocks - 1}`);
    expect(report.diagnostics.length).toBeLessThan(20);
    expect(JSON.stringify(report).length).toBeLessThan(8 * 1024);
    const validated = await validateGgufReport(path);
    expect(validated.diagnostics.length).toBe(report.diagnostics.length);
  });

  it("a block tensor at or past block_count is an extra tensor, and a block inside it is checked for shape", async () => {
    const path = join(root, "blocks-extra.gguf");
    await writeFile(path, claimingGguf(5));
    const report = await inspectGguf(path);
    expect(report.diagnostics).toContainEqual(expect.objectContaining({ code: "E_GGUF_EXTRA_TENSOR", tensor: "blk.5.attn_q.weight" }));
    expect(report.diagnostics.filter((d) => d.code === "E_GGUF_MISSING_TENSOR").at(-1)!.message).toContain("blocks 0-4");
  });

  it("the CLI inspects a block_count of 2^32 - 1 in a small heap, with a short report", async () => {
    const path = join(root, "blocks-cli.gguf");
    await writeFile(path, claimingGguf(4_294_967_295));
    const [text, json] = await Promise.all([runCli(["inspect", path], { nodeArgs: SMALL_HEAP }), runCli(["inspect", path, "--json"], { nodeArgs: SMALL_HEAP })]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout.length).toBeLessThan(8 * 1024);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).diagnostics.length).toBeLessThan(20);
  });
});

describe("config.json num_hidden_layers is a claim, not a loop bound", () => {
  const LAYER = 4_000_000_000;
  async function checkpoint(layers: number): Promise<string> {
    const dir = await mkdtemp(join(root, "layers-"));
    await writeFile(join(dir, "config.json"), JSON.stringify({ architectures: ["BitnetForCausalLM"], model_type: "bitnet", hidden_size: 8, intermediate_size: 8, num_attention_heads: 1, num_hidden_layers: layers, vocab_size: 4 }));
    await writeFile(join(dir, "model.safetensors"), buildSafetensors({ tensors: [{ name: `model.layers.${LAYER}.self_attn.q_proj.weight`, dtype: "F32", shape: [8, 8] }] }));
    return dir;
  }

  it("one tensor at layer 4,000,000,000: the six linears it lacks and one line for the empty layers before it", async () => {
    const source = await openCheckpoint(await resolveSource(await checkpoint(LAYER + 1), { access: "headers" }));
    try {
      const plan = buildPlan(source);
      const missing = plan.diagnostics.filter((d) => d.code === "E_TENSOR_MISSING");
      expect(missing).toHaveLength(7);
      expect(missing.at(-1)).toMatchObject({ tensor: "model.layers.0.self_attn.q_proj.weight", message: expect.stringContaining(`layers 0-${LAYER - 1}`) });
      expect(plan.diagnostics.some((d) => d.code === "E_SHAPE_CONFIG" && d.tensor === undefined)).toBe(false);
    } finally {
      await source.close();
    }
  });

  it("a num_hidden_layers far above the weights is one E_SHAPE_CONFIG; the CLI stays small", async () => {
    const dir = await checkpoint(2 ** 52);
    const report = await inspectCheckpoint(dir);
    expect(report.diagnostics.filter((d) => d.code === "E_SHAPE_CONFIG" && d.tensor === undefined)).toHaveLength(1);
    expect(report.diagnostics.length).toBeLessThan(20);
    const run = await runCli(["inspect", dir, "--json"], { nodeArgs: SMALL_HEAP });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.length).toBeLessThan(32 * 1024);
  });
});

describe("a long report reaches a pipe whole", () => {
  it("validate that fails prints every diagnostic before it exits (oclif's process.exit would cut it at 64 KiB)", async () => {
    // a llama GGUF of 3,000 tensors llama has no place for: one error line each, ~300 KB of report
    const path = await manyTensorGguf(join(root, "long-report.gguf"), 3000, "llama");
    const run = await runCli(["validate", path]);
    expect(run.status, run.stderr).toBe(4);
    expect(run.stdout.length).toBeGreaterThan(200 * 1024);
    expect(run.stdout.split("\n").filter((l) => l.includes("E_GGUF_EXTRA_TENSOR"))).toHaveLength(3000);
    expect(run.stdout.trimEnd()).toMatch(/FAILED: \d+ errors\.$/);
  });
});

describe("150,000 tensors: no stack overflow, in any format, through the library and the CLI", () => {
  const COUNT = 150_000;
  let checkpointDir: string;
  let gguf: string;
  let b158: string;
  beforeAll(async () => {
    [checkpointDir, gguf, b158] = await Promise.all([
      manyTensorCheckpoint(join(root, "many"), COUNT),
      manyTensorGguf(join(root, "many.gguf"), COUNT),
      manyTensorB158(join(root, "many.b158"), COUNT),
    ]);
  });

  it("the library reports and renders every tensor of a checkpoint, with a diagnostic each", async () => {
    const report = await inspectCheckpoint(checkpointDir);
    expect(report.tensors).toHaveLength(COUNT);
    expect(report.diagnostics.filter((d) => d.code === "E_SHAPE_CONFIG")).toHaveLength(COUNT);
    expect(renderCheckpointReport(report, { all: true }).split("\n").length).toBeGreaterThan(2 * COUNT);
  }, 120_000);

  it("the library reports and renders every tensor of a GGUF", async () => {
    const report = await inspectGguf(gguf);
    expect(report.tensors).toHaveLength(COUNT);
    expect(renderGgufReport(report, { all: true }).split("\n").length).toBeGreaterThan(COUNT);
  }, 120_000);

  it("the library reports and renders every tensor of a .b158", async () => {
    const report = await inspectB158(b158);
    expect(report.tensors).toHaveLength(COUNT);
    expect(renderB158Report(report, { all: true }).split("\n").length).toBeGreaterThan(COUNT);
  }, 120_000);

  // The CLI once crashed here even under --json: the renderers run then too (oclif only drops what
  // they print), and --json prints the whole report. One format is enough: the code is shared.
  it("b158 inspect <file.b158> --json", async () => {
    const run = await runCli(["inspect", b158, "--json"], { timeoutMs: 110_000 });
    expect(run.stderr).not.toContain("RangeError");
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).tensors).toHaveLength(COUNT);
  }, 120_000);
});
