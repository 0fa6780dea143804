import { Args, Flags } from "@oclif/core";
import { LAYOUT_IDS } from "../pack/layouts.js";

/** The `<source>` of convert (and eval's first argument): a checkpoint, resolved in src/checkpoint/resolve.ts. */
export const sourceArg = Args.string({
  name: "source",
  required: true,
  description: "The checkpoint: a directory (config.json + model.safetensors, or shards + model.safetensors.index.json), a single .safetensors file, or a Hub model hf://org/name[@revision].",
});

/** What inspect and validate read: a checkpoint, or a file b158 (or anyone) wrote. */
export const anySourceArg = Args.string({
  name: "source",
  required: true,
  description: "A checkpoint directory, a .safetensors file, a Hub model hf://org/name[@revision], a .b158 file or a .gguf file.",
});

/** `--layout`, case-insensitive like llama-quantize's type names (TQ2_0 or tq2_0; src/cli/base-command.ts). */
export const layoutFlag = Flags.option({
  options: LAYOUT_IDS,
  required: true,
  helpValue: "<layout>",
  description: "Ternary layout: i2_s, tl1, tl2 (bitnet.cpp) or tq1_0, tq2_0, q2_0 (llama.cpp; q2_0 needs llama.cpp b9917 or later); any case.",
})();

/** `--markdown`: the report as GitHub-flavoured Markdown on stdout, instead of text. */
export const markdownFlag = (what: string) =>
  Flags.boolean({ description: `Print ${what} as Markdown (for CI: >> "$GITHUB_STEP_SUMMARY" shows it on the run page).` });

export const ternarizeFlag = Flags.string({
  multiple: true,
  description:
    "Generic models (family 5): glob of tensor names to ternarize, e.g. 'model.layers.*.mlp.*_proj.weight'. `*` matches any run of characters. Repeatable. Lossy.",
  helpValue: "<glob>",
});

export const weightsFlag = Flags.option({
  options: ["latent", "quantized"] as const,
  description:
    "Override what the source's framework does with its float linear weights (default: from config.json, docs/ternarization.md): latent = ternarized with absmean at every forward pass (b158 does the same); quantized = used as stored, already ternary x scale (b158 reads codes and scales exactly, per tensor, row or group).",
})();
