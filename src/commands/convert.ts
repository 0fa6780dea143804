import { readFile } from "node:fs/promises";
import { Flags } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { sourceArg, ternarizeFlag } from "../cli/shared-flags.js";
import { convertCheckpoint, type ConvertProgress, type ConvertSummary } from "../convert/convert.js";
import { B158Error, ioError } from "../errors.js";
import { convertCheckpointToGguf } from "../export/convert-gguf.js";
import type { GgufExportSummary } from "../export/gguf.js";
import { renderGgufExport } from "../report/render-gguf.js";
import { formatBytes } from "../report/format.js";
import { FALLBACK_DTYPES } from "../pack/codec.js";
import { LAYOUT_IDS } from "../pack/layouts.js";

export default class Convert extends B158Command {
  static override summary = "Convert a checkpoint to a packed ternary .b158 file, or to a GGUF.";
  static override description = `Ternarizes latent weights (BitNet b1.58 absmean) or repacks pre-quantized ones into the chosen
layout, tensor by tensor on a worker pool, in bounded memory. Non-ternary tensors keep their source
dtype (norms always exactly) unless --embeddings / --float-dtype say otherwise. The output is
written to a temp file, validated (hashes, decoded payloads, degenerate tensors), and only then
renamed into place: on any error or Ctrl-C nothing is left at the output path. The same input and
flags always give a byte-identical file. Format: docs/FORMAT.md.

With --format gguf (the default when -o ends in .gguf) the same conversion is exported to GGUF:
tq1_0/tq2_0 for mainline llama.cpp, i2_s/tl1/tl2 for bitnet.cpp. See docs/gguf.md.`;

  static override examples = [
    { description: "Convert the bundled example to TQ2_0", command: "<%= config.bin %> <%= command.id %> fixtures/example -o example.b158 --layout tq2_0" },
    { description: "bitnet.cpp I2_S, replacing an existing file", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T -o model.b158 --layout i2_s --force" },
    { description: "Keep tensors a layout cannot hold as f16 instead of failing", command: "<%= config.bin %> <%= command.id %> ./bitnet_b1_58-3B -o 3b.b158 --layout tq2_0 --fallback f16" },
    { description: "TL2 with the tilings of your bitnet.cpp build", command: "<%= config.bin %> <%= command.id %> ./model -o model.b158 --layout tl2 --kernel-config include/kernel_config.ini" },
    { description: "A GGUF for llama.cpp, with Q8_0 embeddings", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T -o model.gguf --layout tq2_0 --embeddings q8_0" },
    { description: "In CI: a machine summary", command: "<%= config.bin %> <%= command.id %> ./model -o model.b158 --layout tq1_0 --json" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: sourceArg };
  static override flags = {
    output: Flags.string({ char: "o", required: true, description: "The file to write (.b158, or .gguf with --format gguf).", helpValue: "<file>" }),
    format: Flags.option({ options: ["b158", "gguf"] as const, description: "Output format (default: gguf when -o ends in .gguf, else b158)." })(),
    layout: Flags.option({ options: LAYOUT_IDS, required: true, description: "Ternary layout: i2_s, tl1, tl2 (bitnet.cpp) or tq1_0, tq2_0 (llama.cpp)." })(),
    force: Flags.boolean({ description: "Replace the output file if it exists." }),
    threads: Flags.integer({ min: 0, max: 256, description: "Worker threads, each converting, writing and checking whole tensors; about one core each (default: all cores; 0 runs inline)." }),
    fallback: Flags.option({ options: FALLBACK_DTYPES, description: "Keep ternary tensors the layout cannot hold as this float dtype (reported), instead of failing." })(),
    "float-dtype": Flags.option({ options: FALLBACK_DTYPES, description: "Dtype for float tensors other than norms and embeddings (default: their source dtype)." })(),
    embeddings: Flags.option({ options: [...FALLBACK_DTYPES, "q8_0"] as const, description: "Dtype for the token embedding and lm_head (.b158 default: --float-dtype, else source dtype; GGUF default f16; q8_0 is GGUF only)." })(),
    "i2s-variant": Flags.option({ options: ["x86", "arm"] as const, default: "x86" as const, description: "I2_S block layout: x86 (128, the official files) or arm (64, ARM builds since Nov 2025)." })(),
    "kernel-config": Flags.file({ exists: true, description: "bitnet.cpp kernel_config.ini: TL1/TL2 tilings per shape (shapes it lacks are ineligible)." }),
    validate: Flags.boolean({ default: true, allowNo: true, description: "Validate the written file before publishing it (--no-validate skips)." }),
    ternarize: ternarizeFlag,
  };

  async run(): Promise<ConvertSummary | { conversion: ConvertSummary; gguf: GgufExportSummary }> {
    const { args, flags } = await this.parse(Convert);
    const format = flags.format ?? (flags.output.toLowerCase().endsWith(".gguf") ? "gguf" : "b158");
    const embeddings = flags.embeddings;
    if (format === "b158" && embeddings === "q8_0") {
      throw new B158Error("E_USAGE", "--embeddings q8_0 is for GGUF output; .b158 keeps embeddings as f32, f16 or bf16", { hint: "Add --format gguf, or choose f16." });
    }
    let kernelConfig: { text: string; file: string } | undefined;
    if (flags["kernel-config"] !== undefined) {
      const file = flags["kernel-config"];
      kernelConfig = { text: await readFile(file, "utf8").catch((cause: unknown) => Promise.reject(ioError(file, "read", cause))), file };
    }
    const stop = this.stopOnSignals();
    const progress = this.progress();
    try {
      const options = {
        layout: flags.layout,
        output: flags.output,
        force: flags.force,
        ...(flags.threads === undefined ? {} : { threads: flags.threads }),
        ...(flags.fallback === undefined ? {} : { fallback: flags.fallback }),
        ...(flags["float-dtype"] === undefined ? {} : { floatDtype: flags["float-dtype"] }),
        ternarize: flags.ternarize ?? [],
        i2sVariant: flags["i2s-variant"],
        ...(kernelConfig === undefined ? {} : { kernelConfig }),
        validate: flags.validate,
        signal: stop.signal,
        onProgress: (p: ConvertProgress) => {
          const width = 24;
          const filled = Math.round((width * p.bytesWritten) / Math.max(1, p.bytesTotal));
          progress(`[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${p.done}/${p.total} ${formatBytes(p.bytesWritten)} ${p.tensor}`);
        },
      };
      if (format === "gguf") {
        const result = await convertCheckpointToGguf(args.source, { ...options, ...(embeddings === undefined ? {} : { embeddings }) });
        progress.done();
        this.log(renderGgufExport(result.gguf));
        this.log(`  from      ${result.conversion.family}, layout ${result.conversion.layout}, converted and validated in ${result.conversion.seconds.toFixed(2)} s`);
        for (const warning of result.conversion.warnings) this.log(`  warning   ${warning}`);
        return result;
      }
      const summary = await convertCheckpoint(args.source, { ...options, ...(embeddings === undefined || embeddings === "q8_0" ? {} : { embeddings }) });
      progress.done();
      this.log(renderSummary(summary));
      return summary;
    } finally {
      progress.done();
      stop.dispose();
    }
  }
}

function renderSummary(s: ConvertSummary): string {
  const layouts = Object.entries(s.tensors.byLayout).map(([l, n]) => `${l} x${n}`).join(", ");
  const bpw = Object.entries(s.bitsPerWeight).map(([role, b]) => `${role} ${b.toFixed(3)}`).join(", ");
  const lines = [
    `Wrote ${s.path} (${formatBytes(s.size)}) in ${s.seconds.toFixed(2)} s with ${s.threads || "no"} worker thread${s.threads === 1 ? "" : "s"}${s.validated ? ", validated" : ", NOT validated (--no-validate)"}`,
    `  sha256    ${s.sha256}`,
    `  family    ${s.family}, layout ${s.layout}`,
    `  tensors   ${s.tensors.total}: ${layouts}`,
    `  bits/wt   ${bpw}`,
  ];
  for (const warning of s.warnings) lines.push(`  warning   ${warning}`);
  return lines.join("\n");
}
