import { describe, expect, it } from "vitest";
import type { B158Report } from "./b158-report.js";
import { findOutliers, markdownB158Report, renderB158Report, roleSummaries } from "./render-b158.js";

type Tensor = B158Report["tensors"][number];

/** A 2B-4T-sized report: 30 layers x 7 linears with long names, a 128256-row embedding. */
function report(change: (t: Tensor) => Tensor = (t) => t): B158Report {
  const tensors: Tensor[] = [];
  let offset = 4096;
  const push = (t: Omit<Tensor, "offset" | "sha256" | "ggufName" | "sourceDtype" | "bitsPerWeight" | "groupSize" | "granularity" | "params" | "layout"> & Partial<Tensor>) => {
    const ternary = t.distribution !== null;
    tensors.push(
      change({
        ggufName: null,
        layout: ternary ? "i2_s" : "bf16",
        params: ternary ? { block_size: 128, variant: "x86" } : {},
        groupSize: null,
        granularity: ternary ? "per tensor" : null,
        sourceDtype: ternary ? "U8" : "BF16",
        offset,
        sha256: "0".repeat(64),
        bitsPerWeight: ternary ? 2.0 : 16,
        ...t,
      } as Tensor),
    );
    offset += 64 * 1024;
  };
  push({ name: "model.embed_tokens.weight", shape: [128256, 2560], role: "embedding", scale: null, length: 2560 * 128256 * 2, distribution: null });
  for (let layer = 0; layer < 30; layer++) {
    for (const [name, shape] of [
      ["self_attn.q_proj", [2560, 2560]],
      ["self_attn.k_proj", [640, 2560]],
      ["self_attn.v_proj", [640, 2560]],
      ["self_attn.o_proj", [2560, 2560]],
      ["mlp.gate_proj", [6912, 2560]],
      ["mlp.up_proj", [6912, 2560]],
      ["mlp.down_proj", [2560, 6912]],
    ] as const) {
      const wobble = (layer % 5) * 0.001;
      push({ name: `model.layers.${layer}.${name}.weight`, shape, role: "ternary-linear", scale: 0.05 + wobble, length: 1, distribution: { minus: 0.3 + wobble, zero: 0.4 - 2 * wobble, plus: 0.3 + wobble } });
    }
    push({ name: `model.layers.${layer}.input_layernorm.weight`, shape: [2560], role: "norm", scale: null, length: 5120, distribution: null });
  }
  return {
    schemaVersion: 1,
    kind: "b158",
    tool: { name: "b158", version: "0.1.0" },
    file: "bitnet-b1.58-2B-4T-i2_s.b158",
    size: 1_200_000_000,
    version: { major: 1, minor: 0 },
    headerLength: 900_000,
    dataOffset: 905_216,
    model: { family: "bitnet-packed", architecture: "BitNetForCausalLM" },
    writer: { name: "b158", version: "0.1.0" },
    files: { "config.json": 800, "tokenizer.json": 9_000_000, "tokenizer_config.json": 50_000, "generation_config.json": 100, "special_tokens_map.json": 80 },
    provenance: {},
    tensors,
    summary: { tensors: tensors.length, byLayout: { bf16: 31, i2_s: 210 }, bitsPerWeight: { embedding: 16, norm: 16, "ternary-linear": 2 } },
    diagnostics: [{ severity: "warning", code: "W_GGUF_ACTIVATION", message: "config.json hidden_act is relu2, but mainline llama.cpp (arch bitnet: silu) computes another activation in the FFN: the model loads and runs there with wrong outputs." }],
  };
}

describe("inspect <file.b158> for people", () => {
  it("fits 80 columns by default: ternary linears summarised per role across layers, other tensors counted", () => {
    const text = renderB158Report(report());
    const lines = text.split("\n");
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(lines.length).toBeLessThan(45); // not 241 tensor rows
    expect(text).toContain("Ternary linears: 7 roles across 30 layers, i2_s (block_size=128 variant=x86)");
    expect(text).toMatch(/^ {2}self_attn\.q_proj\s+\[2560, 2560\]\s+30\s+0\.05000\s+0\.05200\s+0\.05400$/m);
    expect(text).toMatch(/^ {2}mlp\.down_proj\s+30\.0 30\.2 30\.4\s+39\.2 39\.6 40\.0\s+30\.0 30\.2 30\.4$/m);
    expect(text).toContain("Outliers: none");
    expect(text).toContain("Other tensors: embedding bf16 x1, norm bf16 x30");
    expect(text).not.toMatch(/^ {2}tensor\s+layout/m); // the per-tensor table is --all
  });

  it("names the layers that stand out: a scale far from its role's median, a tensor of zeros", () => {
    const text = renderB158Report(
      report((t) =>
        t.name === "model.layers.17.mlp.down_proj.weight" ? { ...t, scale: 0.5 } : t.name === "model.layers.3.self_attn.k_proj.weight" ? { ...t, distribution: { minus: 0, zero: 1, plus: 0 } } : t,
      ),
    );
    expect(text).toContain("Outliers (2)");
    expect(text).toContain("model.layers.17.mlp.down_proj.weight: scale 0.5000 (role median 0.05200, 9.6x)");
    expect(text).toContain("model.layers.3.self_attn.k_proj.weight: 100.0% of its codes are 0");
    for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it("ordinary spread across layers is not an outlier", () => {
    expect(findOutliers(roleSummaries(report()))).toEqual([]);
  });

  it("--all: the per-tensor table, with the layout-parameters column named as such", () => {
    const text = renderB158Report(report(), { all: true });
    expect(text).toMatch(/^ {2}tensor\s+layout\s+layout params\s+shape\s+scale\s+-1 \/ 0 \/ \+1\s+bpw\s+offset$/m);
    expect(text).toMatch(/^ {2}model\.layers\.29\.mlp\.down_proj\.weight\s+i2_s\s+block_size=128 variant=x86\s+\[2560, 6912\]/m);
  });

  it("--markdown: the role table", () => {
    const md = markdownB158Report(report());
    expect(md).toContain("| role | layout | shape | tensors | scale min / median / max | -1 % (median) | 0 % (median) | +1 % (median) |");
    expect(md).toContain("| `self_attn.q_proj` | i2_s (block_size=128 variant=x86) | [2560, 2560] | 30 | 0.05000 / 0.05200 / 0.05400 | 30.2 | 39.6 | 30.2 |");
  });
});
