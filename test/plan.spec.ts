import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily, type FixtureOptions } from "../fixtures/generate.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { resolveSource } from "../src/checkpoint/resolve.js";
import { buildPlan, type TensorPlan } from "../src/model/plan.js";
import { LAYOUT_IDS } from "../src/pack/layouts.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-plan-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function planFor(options: Omit<FixtureOptions, "dir">, edit?: (dir: string) => Promise<void>, ternarize?: string[]): Promise<TensorPlan> {
  const dir = join(root, `ckpt-${counter++}`);
  await generateCheckpoint({ ...options, dir });
  if (edit) await edit(dir);
  const checkpoint = await openCheckpoint(await resolveSource(dir));
  try {
    return buildPlan(checkpoint, { ternarize: ternarize ?? [] });
  } finally {
    await checkpoint.close();
  }
}

const codes = (plan: TensorPlan) => plan.diagnostics.map((d) => d.code);
const byAction = (plan: TensorPlan) => {
  const counts: Record<string, number> = {};
  for (const e of plan.entries) counts[e.action] = (counts[e.action] ?? 0) + 1;
  return counts;
};

describe("family detection and the tensor plan", () => {
  const expectations: [FixtureFamily, string, string, string][] = [
    ["bitnet-1bitllm", "bitnet-1bitllm", "absmean", "ternarize"],
    ["bitnet-2b4t-bf16", "bitnet-latent", "absmean", "ternarize"],
    ["bitnet-2b4t-packed", "bitnet-packed", "multiply", "repack"],
    ["llama-bitnet-packed", "llama-bitnet-packed", "divide", "repack"],
  ];

  it.each(expectations)("%s is detected as %s with %s scales and its linears are planned to %s", async (fixture, family, convention, action) => {
    const plan = await planFor({ family: fixture, dims: { layers: 2 } });
    expect(plan.family.id).toBe(family);
    expect(plan.family.convention).toBe(convention);
    const linears = plan.entries.filter((e) => e.role === "ternary-linear");
    expect(linears).toHaveLength(2 * 7);
    expect(linears.every((e) => e.action === action)).toBe(true);
    // every linear of these tiny but aligned shapes fits every layout
    for (const e of linears) for (const layout of LAYOUT_IDS) expect(e.layouts?.[layout].eligible, `${e.name} ${layout}`).toBe(true);
    expect(plan.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    // norms are kept, and no non-linear tensor is ternarized
    expect(plan.entries.filter((e) => e.role === "norm").every((e) => e.action === "keep")).toBe(true);
    expect(plan.entries.find((e) => e.name === "model.embed_tokens.weight")?.role).toBe("embedding");
  });

  it("packed families consume each weight_scale into its linear and unpack the logical shape", async () => {
    const plan = await planFor({ family: "bitnet-2b4t-packed", dims: { layers: 1, hidden: 256, intermediate: 512, heads: 4, kvHeads: 2 } });
    const q = plan.entries.find((e) => e.name === "model.layers.0.self_attn.q_proj.weight")!;
    expect(q.dtype).toBe("U8");
    expect(q.shape).toEqual([64, 256]);
    expect(q.logicalShape).toEqual([256, 256]);
    expect(q.parameters).toBe(256 * 256);
    expect(q.scaleTensor).toBe("model.layers.0.self_attn.q_proj.weight_scale");
    expect(plan.entries.find((e) => e.name === q.scaleTensor)?.action).toBe("consume");
    expect(byAction(plan).consume).toBe(7);
    expect(q.ggufName).toBe("blk.0.attn_q.weight");
  });

  it("llama-bitnet-packed keeps lm_head float and reports the assumed BitLinear convention", async () => {
    const plan = await planFor({ family: "llama-bitnet-packed", dims: { layers: 1 } });
    expect(plan.family.conventionSource).toBe("assumed");
    expect(codes(plan)).toContain("W_SCALE_CONVENTION_ASSUMED");
    const head = plan.entries.find((e) => e.name === "lm_head.weight")!;
    expect(head.role).toBe("lm-head");
    expect(head.action).toBe("keep");
  });

  it("an explicit linear_class is read from config.json, not assumed", async () => {
    const plan = await planFor({ family: "llama-bitnet-packed", dims: { layers: 1 } }, async (dir) => {
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
      config.quantization_config.linear_class = "autobitlinear";
      await writeFile(join(dir, "config.json"), JSON.stringify(config));
    });
    expect(plan.family.convention).toBe("multiply");
    expect(plan.family.conventionSource).toBe("config");
    expect(codes(plan)).not.toContain("W_SCALE_CONVENTION_ASSUMED");
  });

  it("1bitLLM-3B-like shapes (3200 / 8640) are ineligible for I2_S and TQ, with the rule named", async () => {
    const plan = await planFor({ family: "bitnet-1bitllm", dims: { layers: 1, hidden: 320, intermediate: 864, heads: 4, kvHeads: 4 } });
    const down = plan.entries.find((e) => e.name === "model.layers.0.mlp.down_proj.weight")!;
    expect(down.logicalShape).toEqual([320, 864]);
    for (const layout of ["i2_s", "tq1_0", "tq2_0"] as const) {
      const fit = down.layouts![layout];
      expect(fit.eligible, layout).toBe(false);
      if (!fit.eligible) {
        expect(fit.reason).toContain("864");
        expect(fit.rule.length).toBeGreaterThan(0);
      }
    }
    const estimate = plan.estimates.find((e) => e.layout === "tq2_0")!;
    expect(estimate.ineligible).toContain(down.name);
  });

  it("a generic model ternarizes nothing without --ternarize, and exactly the globbed tensors with it", async () => {
    const without = await planFor({ family: "llama-generic", dims: { layers: 2 } });
    expect(without.family.id).toBe("generic");
    expect(without.entries.some((e) => e.action === "ternarize")).toBe(false);
    expect(codes(without)).toContain("W_GENERIC_NO_TERNARIZE");

    const withGlob = await planFor({ family: "llama-generic", dims: { layers: 2 } }, undefined, ["model.layers.*.mlp.*_proj.weight"]);
    const ternarized = withGlob.entries.filter((e) => e.action === "ternarize").map((e) => e.name);
    expect(ternarized).toHaveLength(2 * 3);
    expect(ternarized.every((n) => /\.mlp\.(gate|up|down)_proj\.weight$/.test(n))).toBe(true);
    expect(withGlob.family.lossy).toBe(true);
    expect(codes(withGlob)).toContain("W_LOSSY_TERNARIZATION");
  });

  it("sharded and unsharded checkpoints give the same plan", async () => {
    const one = await planFor({ family: "bitnet-2b4t-bf16", dims: { layers: 2 }, seed: 7 });
    const three = await planFor({ family: "bitnet-2b4t-bf16", dims: { layers: 2 }, seed: 7, shards: 3 });
    const strip = (plan: TensorPlan) => plan.entries.map(({ shard: _shard, ...rest }) => rest);
    expect(strip(three)).toEqual(strip(one));
    expect(new Set(three.entries.map((e) => e.shard)).size).toBe(3);
  });

  it("shapes that disagree with config.json are errors naming the tensor", async () => {
    const plan = await planFor({ family: "bitnet-2b4t-bf16", dims: { layers: 2 } }, async (dir) => {
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
      config.intermediate_size = 1024;
      config.num_hidden_layers = 3;
      await writeFile(join(dir, "config.json"), JSON.stringify(config));
    });
    const shapeErrors = plan.diagnostics.filter((d) => d.code === "E_SHAPE_CONFIG");
    expect(shapeErrors.some((d) => d.tensor === "model.layers.0.mlp.up_proj.weight")).toBe(true);
    expect(shapeErrors.some((d) => d.tensor === "model.layers.1.mlp.ffn_sub_norm.weight")).toBe(true);
    expect(shapeErrors.some((d) => d.tensor === undefined && d.message.includes("num_hidden_layers = 3"))).toBe(true);
  });

  it("use_rms_norm checkpoints are reported as unsupported", async () => {
    const plan = await planFor({ family: "bitnet-2b4t-packed", dims: { layers: 1 } }, async (dir) => {
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
      config.quantization_config.use_rms_norm = true;
      await writeFile(join(dir, "config.json"), JSON.stringify(config));
    });
    expect(codes(plan)).toContain("E_MODEL_UNSUPPORTED");
  });

  it("estimates: packed TQ2_0 ternary part is 2.0625 bits per weight and whole-file bpw counts floats", async () => {
    const plan = await planFor({ family: "bitnet-2b4t-packed", dims: { layers: 2 } });
    const tq2 = plan.estimates.find((e) => e.layout === "tq2_0")!;
    expect(tq2.ternaryBitsPerWeight).toBeCloseTo(2.0625, 6);
    const tq1 = plan.estimates.find((e) => e.layout === "tq1_0")!;
    expect(tq1.ternaryBitsPerWeight).toBeCloseTo(1.6875, 6);
    expect(tq2.bitsPerWeight).toBeGreaterThan(tq2.ternaryBitsPerWeight); // bf16 embeddings and norms
  });
});
