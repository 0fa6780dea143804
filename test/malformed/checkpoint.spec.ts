import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ErrorCode } from "../../src/errors.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { resolveSource } from "../../src/checkpoint/resolve.js";
import { encodeSafetensors } from "../../src/formats/safetensors/write.js";
import { buildPlan } from "../../src/model/plan.js";
import { packHfPacked } from "../../src/pack/hf-packed.js";
import { tempCheckpoint } from "../support/build-safetensors.js";
import { expectB158Error } from "../support/expect-error.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});
async function checkpointDir(files: Record<string, string | Uint8Array>): Promise<string> {
  const { dir, cleanup } = await tempCheckpoint(files);
  cleanups.push(cleanup);
  return dir;
}
const open = async (spec: string) => openCheckpoint(await resolveSource(spec));

const shard = (...names: string[]) => encodeSafetensors(names.map((name) => ({ name, dtype: "U8" as const, shape: [2], data: new Uint8Array(2) })));
const index = (weightMap: Record<string, string>, extra: object = {}) => JSON.stringify({ metadata: { total_size: 2 * Object.keys(weightMap).length }, weight_map: weightMap, ...extra });
const SHARD1 = "model-00001-of-00002.safetensors";
const SHARD2 = "model-00002-of-00002.safetensors";
const CONFIG = JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 8 });

const CASES: [string, Record<string, string | Uint8Array>, ErrorCode][] = [
  ["index is not JSON", { "config.json": CONFIG, "model.safetensors.index.json": "{", [SHARD1]: shard("a") }, "E_INDEX_JSON"],
  ["index without weight_map", { "config.json": CONFIG, "model.safetensors.index.json": "{}", [SHARD1]: shard("a") }, "E_INDEX_JSON"],
  ["index with an empty weight_map", { "config.json": CONFIG, "model.safetensors.index.json": index({}), [SHARD1]: shard("a") }, "E_INDEX_JSON"],
  ["index maps a tensor to a path outside the directory", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: "../evil.safetensors" }) }, "E_INDEX_JSON"],
  ["index maps a tensor to a non-safetensors file", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: "pytorch_model.bin" }) }, "E_INDEX_JSON"],
  ["index has a duplicate key", { "config.json": CONFIG, "model.safetensors.index.json": `{"weight_map":{"a":"${SHARD1}","a":"${SHARD2}"}}`, [SHARD1]: shard("a"), [SHARD2]: shard("b") }, "E_INDEX_JSON"],
  ["index total_size is negative", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1 }, { metadata: { total_size: -1 } }), [SHARD1]: shard("a") }, "E_INDEX_JSON"],
  ["index names a missing shard", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1, b: SHARD2 }), [SHARD1]: shard("a") }, "E_INDEX_MISSING_SHARD"],
  ["shards on disk without an index", { "config.json": CONFIG, [SHARD1]: shard("a"), [SHARD2]: shard("b") }, "E_INDEX_MISSING_SHARD"],
  ["a tensor in two shards", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1, b: SHARD2 }), [SHARD1]: shard("a"), [SHARD2]: shard("a", "b") }, "E_INDEX_MISMATCH"],
  ["index lists a tensor no shard holds", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1, b: SHARD2, c: SHARD2 }), [SHARD1]: shard("a"), [SHARD2]: shard("b") }, "E_INDEX_MISMATCH"],
  ["a shard holds a tensor the index omits", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1, b: SHARD2 }), [SHARD1]: shard("a"), [SHARD2]: shard("b", "z") }, "E_INDEX_MISMATCH"],
  ["index maps a tensor to the wrong shard", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD2, b: SHARD1 }), [SHARD1]: shard("a"), [SHARD2]: shard("b") }, "E_INDEX_MISMATCH"],
  ["config.json is not JSON", { "config.json": "{ hidden_size: 8 }", "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json is a list", { "config.json": "[]", "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json hidden_size is a string", { "config.json": JSON.stringify({ hidden_size: "big" }), "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json hidden_size is zero", { "config.json": JSON.stringify({ hidden_size: 0 }), "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json has an unknown linear_class", { "config.json": JSON.stringify({ quantization_config: { quant_method: "bitnet", linear_class: "foo" } }), "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json quantization_config without quant_method", { "config.json": JSON.stringify({ quantization_config: {} }), "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json has duplicate keys", { "config.json": '{"hidden_size":8,"hidden_size":16}', "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["config.json is not UTF-8", { "config.json": Uint8Array.from([0x7b, 0xc3, 0x28, 0x7d]), "model.safetensors": shard("a") }, "E_CONFIG_INVALID"],
  ["a directory without weights", { "config.json": CONFIG, "README.md": "hi" }, "E_SOURCE_UNRECOGNIZED"],
  ["a directory with only pickle weights", { "config.json": CONFIG, "pytorch_model.bin": "PK" }, "E_SOURCE_UNRECOGNIZED"],
  ["two loose .safetensors files and no index", { "config.json": CONFIG, "a.safetensors": shard("a"), "b.safetensors": shard("b") }, "E_SOURCE_AMBIGUOUS"],
  ["a shard that is itself malformed", { "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1 }), [SHARD1]: new Uint8Array(3) }, "E_SAFETENSORS_TRUNCATED"],
];

describe("malformed checkpoints", () => {
  it.each(CASES)("%s -> %s", async (_name, files, code) => {
    const dir = await checkpointDir(files);
    await expectB158Error(open(dir), code);
  });

  it("a nonexistent path -> E_SOURCE_NOT_FOUND", async () => {
    const dir = await checkpointDir({});
    await expectB158Error(open(join(dir, "missing")), "E_SOURCE_NOT_FOUND", "missing");
  });

  it("a file that is not .safetensors -> E_SOURCE_UNRECOGNIZED", async () => {
    const dir = await checkpointDir({ "model.gguf": "GGUF" });
    await expectB158Error(open(join(dir, "model.gguf")), "E_SOURCE_UNRECOGNIZED");
  });

  it("a single .safetensors file without config.json opens with a W_CONFIG_MISSING warning, not an error", async () => {
    const dir = await checkpointDir({ "weights.safetensors": shard("a") });
    const checkpoint = await open(join(dir, "weights.safetensors"));
    try {
      expect(checkpoint.diagnostics.map((d) => [d.severity, d.code])).toEqual([["warning", "W_CONFIG_MISSING"]]);
      expect(checkpoint.tensors.map((t) => t.name)).toEqual(["a"]);
    } finally {
      await checkpoint.close();
    }
  });

  it("a U8 linear weight without weight_scale is an E_PACKED_NO_SCALE error in the plan", async () => {
    const packed = packHfPacked(new Int8Array(8 * 8), 8, 8);
    const dir = await checkpointDir({
      "config.json": JSON.stringify({ architectures: ["BitNetForCausalLM"], model_type: "bitnet", quantization_config: { quant_method: "bitnet", linear_class: "autobitlinear" } }),
      "model.safetensors": encodeSafetensors([
        { name: "model.layers.0.self_attn.q_proj.weight", dtype: "U8", shape: [2, 8], data: packed },
        { name: "model.layers.0.self_attn.k_proj.weight", dtype: "U8", shape: [2, 8], data: packed },
        { name: "model.layers.0.self_attn.k_proj.weight_scale", dtype: "F32", shape: [1], data: new Uint8Array(new Float32Array([0.5]).buffer) },
      ]),
    });
    const checkpoint = await open(dir);
    try {
      const plan = buildPlan(checkpoint);
      const errors = plan.diagnostics.filter((d) => d.severity === "error");
      expect(errors.find((d) => d.code === "E_PACKED_NO_SCALE")?.tensor).toBe("model.layers.0.self_attn.q_proj.weight");
      // the sibling with a scale is still repacked
      expect(plan.entries.find((e) => e.name === "model.layers.0.self_attn.k_proj.weight")?.action).toBe("repack");
    } finally {
      await checkpoint.close();
    }
  });

  it("a weight_scale with more than one element is an E_PACKED_SHAPE error", async () => {
    const dir = await checkpointDir({
      "config.json": JSON.stringify({ architectures: ["BitNetForCausalLM"], quantization_config: { quant_method: "bitnet", linear_class: "autobitlinear" } }),
      "model.safetensors": encodeSafetensors([
        { name: "model.layers.0.mlp.up_proj.weight", dtype: "U8", shape: [2, 8], data: new Uint8Array(16).fill(0x55) },
        { name: "model.layers.0.mlp.up_proj.weight_scale", dtype: "F32", shape: [2], data: new Uint8Array(8) },
      ]),
    });
    const checkpoint = await open(dir);
    try {
      expect(buildPlan(checkpoint).diagnostics.some((d) => d.code === "E_PACKED_SHAPE" && d.tensor === "model.layers.0.mlp.up_proj.weight_scale")).toBe(true);
    } finally {
      await checkpoint.close();
    }
  });

  it("an index whose total_size is wrong is only a warning", async () => {
    const dir = await checkpointDir({ "config.json": CONFIG, "model.safetensors.index.json": index({ a: SHARD1 }, { metadata: { total_size: 999 } }), [SHARD1]: shard("a") });
    const checkpoint = await open(dir);
    try {
      expect(checkpoint.diagnostics.map((d) => d.code)).toContain("W_INDEX_TOTAL_SIZE");
    } finally {
      await checkpoint.close();
    }
  });
});
