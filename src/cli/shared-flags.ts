import { Args, Flags } from "@oclif/core";

/** The one `<source>` argument every checkpoint-reading command takes (resolved in src/checkpoint/resolve.ts). */
export const sourceArg = Args.string({
  name: "source",
  required: true,
  description: "Checkpoint directory (config.json + model.safetensors, or shards + model.safetensors.index.json), or a single .safetensors file.",
});

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
