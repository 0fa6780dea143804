import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { abortOnInterrupt } from "../cli/interrupt.js";
import { downloadProgress, evalProgress, tensorLine } from "../cli/progress.js";
import { layoutFlag, markdownFlag, sourceArg, ternarizeFlag, weightsFlag } from "../cli/shared-flags.js";
import { convertCheckpoint, type ConvertPhase, type ConvertProgress } from "../convert/convert.js";
import { B158Error, ioError } from "../errors.js";
import { convertCheckpointToGguf } from "../export/convert-gguf.js";
import type { GgufExportProgress } from "../export/gguf.js";
import { plural } from "../report/format.js";
import { markdownConvertSummary, renderConvertSummary, warningLines, type ConvertResult } from "../report/render-convert.js";
import { renderGgufExport } from "../report/render-gguf.js";
import { renderEvalReport } from "../report/render-eval.js";
import { evaluate, type EvalReport } from "../runtime/eval.js";
import { FALLBACK_DTYPES } from "../pack/codec.js";
import { GGUF_TARGET_IDS } from "../formats/gguf/targets.js";

export default class Convert extends B158Command {
  static override summary = "Convert a checkpoint to a packed ternary .b158 file, or to a GGUF.";
  static override description = `Ternarizes latent weights (BitNet b1.58 absmean, as the framework does at every forward pass), reads already-ternary (fake-quantized) weights exactly, or repacks pre-quantized ones into the chosen layout (the source semantics come from config.json; --weights overrides them), tensor by tensor on a worker pool, in bounded memory. Non-ternary tensors keep their source dtype (norms always exactly) unless --embeddings / --float-dtype say otherwise. The output is written to a temp file, validated (hashes, decoded payloads, degenerate tensors), and only then renamed into place: on any error or Ctrl-C nothing is left at the output path. The same input and flags always give a byte-identical file. Format: docs/FORMAT.md.

With --format gguf (the default when -o ends in .gguf) the same conversion is exported to GGUF: tq1_0/tq2_0/q2_0 for mainline llama.cpp, i2_s/tl1/tl2 for bitnet.cpp. --target picks the runtime whose type ids the file uses (bitnet.cpp renumbered TL2 and the I2_S file type in 2026); the default is what published GGUFs use. See docs/gguf.md.`;

  static override examples = [
    { description: "Convert the bundled example to TQ2_0", command: "<%= config.bin %> <%= command.id %> fixtures/example -o example.b158 --layout tq2_0" },
    { description: "bitnet.cpp I2_S, replacing an existing file", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T -o model.b158 --layout i2_s --force" },
    { description: "Keep tensors a layout cannot hold as f16 instead of failing", command: "<%= config.bin %> <%= command.id %> ./bitnet_b1_58-3B -o 3b.b158 --layout tq2_0 --fallback f16" },
    { description: "TL2 with the tilings of your bitnet.cpp build", command: "<%= config.bin %> <%= command.id %> ./model -o model.b158 --layout tl2 --kernel-config include/kernel_config.ini" },
    { description: "A GGUF for llama.cpp, with Q8_0 embeddings", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T -o model.gguf --layout tq2_0 --embeddings q8_0" },
    { description: "I2_S for the 2026 bitnet.cpp fork's ids", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T -o model.gguf --layout i2_s --target bitnet.cpp-2026" },
    { description: "Mainline llama.cpp Q2_0 (K % 64 == 0, per-group scales kept exactly)", command: "<%= config.bin %> <%= command.id %> ./bitnet_b1_58-3B -o 3b.gguf --layout q2_0" },
    { description: "A checkpoint whose config says online but which was exported fake-quantized", command: "<%= config.bin %> <%= command.id %> ./model -o model.b158 --layout tq2_0 --weights quantized" },
    { description: "In CI: a machine summary", command: "<%= config.bin %> <%= command.id %> ./model -o model.b158 --layout tq1_0 --json" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: sourceArg };
  static override flags = {
    output: Flags.string({ char: "o", required: true, description: "The file to write (.b158, or .gguf with --format gguf).", helpValue: "<file>" }),
    format: Flags.option({ options: ["b158", "gguf"] as const, description: "Output format (default: gguf when -o ends in .gguf, else b158)." })(),
    layout: layoutFlag,
    force: Flags.boolean({ description: "Replace the output file if it exists." }),
    threads: Flags.integer({ min: 0, max: 256, description: "Worker threads, each converting, writing and checking whole tensors; about one core each (default: all cores; 0 runs inline)." }),
    fallback: Flags.option({ options: FALLBACK_DTYPES, description: "Keep ternary tensors the layout cannot hold as this float dtype (reported), instead of failing." })(),
    "allow-no-ternary": Flags.boolean({ description: "With --fallback: write the file even when the layout holds none of the ternary tensors (all kept as floats)." }),
    "float-dtype": Flags.option({ options: FALLBACK_DTYPES, description: "Dtype for float tensors other than norms and embeddings (default: their source dtype)." })(),
    embeddings: Flags.option({ options: [...FALLBACK_DTYPES, "q8_0"] as const, description: "Dtype for the token embedding and lm_head (.b158 default: --float-dtype, else source dtype; GGUF default f16; q8_0 is GGUF only)." })(),
    target: Flags.option({ options: GGUF_TARGET_IDS, description: "GGUF only: the runtime whose type ids to write: llama.cpp (mainline: TQ1_0/TQ2_0), bitnet.cpp-2024 (the 2024-2025 fork: I2_S 36, TL1 38, TL2 39), bitnet.cpp-2026 (I2_S 36, TL1 38, TL2 42). Default: llama.cpp for tq*, bitnet.cpp-2024 for i2_s/tl*." })(),
    "i2s-variant": Flags.option({ options: ["x86", "arm"] as const, default: "x86" as const, description: "I2_S block layout: x86 (128, the official files) or arm (64, ARM builds since Nov 2025)." })(),
    "kernel-config": Flags.file({ exists: true, description: "bitnet.cpp kernel_config.ini: TL1/TL2 tilings per shape (shapes it lacks are ineligible)." }),
    validate: Flags.boolean({ default: true, allowNo: true, description: "Validate the written file before publishing it (--no-validate skips)." }),
    eval: Flags.boolean({
      description: "Before publishing, run `b158 eval` of the written file against the source (default text, int8 activations, default thresholds): a miss leaves nothing at the output path (exit 4).",
    }),
    ternarize: ternarizeFlag,
    weights: weightsFlag,
    markdown: markdownFlag("the conversion summary"),
    ...progressFlags,
  };

  async run(): Promise<ConvertResult> {
    const { args, flags } = await this.parse(Convert);
    if (flags.markdown && this.jsonEnabled()) throw new B158Error("E_USAGE", "--markdown and --json both choose what stdout holds: give one", { hint: "Use --json for scripts and --markdown for the CI run page (>> \"$GITHUB_STEP_SUMMARY\")." });
    const extension = extname(flags.output).toLowerCase();
    const format = flags.format ?? (extension === ".gguf" ? "gguf" : "b158");
    if ((format === "b158" && extension === ".gguf") || (format === "gguf" && extension === ".b158")) {
      throw new B158Error("E_USAGE", `-o ${flags.output} --format ${format}: a ${format === "b158" ? ".b158" : "GGUF"} file named ${extension} would be taken for a ${format === "b158" ? "GGUF" : ".b158"}`, {
        hint: `Name the output ${format === "b158" ? ".b158" : ".gguf"}, or drop --format: the output name's extension chooses the format.`,
        details: { output: flags.output, format },
      });
    }
    const embeddings = flags.embeddings;
    if (format === "b158" && embeddings === "q8_0") {
      throw new B158Error("E_USAGE", "--embeddings q8_0 is for GGUF output; .b158 keeps embeddings as f32, f16 or bf16", { hint: "Add --format gguf, or choose f16." });
    }
    if (format === "b158" && flags.target !== undefined) {
      throw new B158Error("E_USAGE", "--target is for GGUF output: a .b158 names its layout, not type ids", { hint: "Add --format gguf (or -o <file>.gguf), or choose the target when you export." });
    }
    let kernelConfig: { text: string; file: string } | undefined;
    if (flags["kernel-config"] !== undefined) {
      const file = flags["kernel-config"];
      kernelConfig = { text: await readFile(file, "utf8").catch((cause: unknown) => Promise.reject(ioError(file, "read", cause))), file };
    }
    const interrupt = abortOnInterrupt();
    const progress = this.progress(flags.quiet);
    let evalReport: EvalReport | undefined;
    const beforePublish = async (written: string) => {
      const report = await evaluate(args.source, written, { signal: interrupt.signal, onProgress: evalProgress(progress) });
      evalReport = report;
      if (!report.pass) {
        progress.end();
        if (!this.jsonEnabled()) this.log(renderEvalReport(report));
        const missed = report.comparisons.flatMap((c) => c.checks.filter((k) => k.enforced && !k.pass).map((k) => `${k.metric} ${k.value} (threshold ${k.threshold})`));
        throw new B158Error("E_EVAL_THRESHOLD", `${flags.output}: the converted model missed ${missed.join("; ")}; nothing was written`, {
          details: { missed, eval: report },
          hint: "The conversion changed what the model computes; run b158 eval on a --no-eval conversion to see every position.",
        });
      }
    };
    let exporting = false;
    try {
      const options = {
        layout: flags.layout,
        output: flags.output,
        force: flags.force,
        ...(flags.threads === undefined ? {} : { threads: flags.threads }),
        ...(flags.fallback === undefined ? {} : { fallback: flags.fallback }),
        ...(flags["float-dtype"] === undefined ? {} : { floatDtype: flags["float-dtype"] }),
        ternarize: flags.ternarize ?? [],
        ...(flags.weights === undefined ? {} : { weights: flags.weights }),
        i2sVariant: flags["i2s-variant"],
        ...(kernelConfig === undefined ? {} : { kernelConfig }),
        validate: flags.validate,
        allowNoTernary: flags["allow-no-ternary"],
        ...(flags.eval ? { beforePublish } : {}),
        signal: interrupt.signal,
        onDownload: downloadProgress(progress, args.source),
        onPhase: (p: ConvertPhase) => {
          if (p.phase === "reading") progress.phase(`reading ${args.source}`);
          else if (p.phase === "converting") progress.phase(`converting ${plural(p.tensors ?? 0, "tensor")} to ${flags.layout}`, { total: p.bytes ?? 0, unit: "bytes", steps: p.tensors ?? 0 });
          else progress.phase(`validating the written file`, { total: p.bytes ?? 0, unit: "bytes" });
        },
        onProgress: (p: ConvertProgress) =>
          progress.update({ done: p.bytesWritten, step: p.done, item: p.tensor, line: tensorLine(p.tensor, p.shape, p.sourceDtype, p.layout, p.sourceBytes, p.bytes) }),
      };
      let result: ConvertResult;
      if (format === "gguf") {
        const converted = await convertCheckpointToGguf(args.source, {
          ...options,
          ...(embeddings === undefined ? {} : { embeddings }),
          ...(flags.target === undefined ? {} : { target: flags.target }),
          onExportProgress: (p: GgufExportProgress) => {
            if (!exporting) progress.phase(`writing the GGUF: ${plural(p.total, "tensor")}`, { total: p.bytesTotal, unit: "bytes", steps: p.total });
            exporting = true;
            progress.update({ done: p.bytesWritten, step: p.done, item: p.tensor, line: tensorLine(p.tensor, p.shape, p.fromLayout, p.type, undefined, p.bytes) });
          },
        });
        progress.end();
        result = evalReport === undefined ? converted : { ...converted, eval: evalReport };
        if (flags.markdown) this.log(markdownConvertSummary(result));
        else {
          this.log(renderGgufExport(converted.gguf));
          this.log(`  from      ${converted.conversion.family}, layout ${converted.conversion.layout}, converted and validated in ${converted.conversion.seconds.toFixed(2)} s`);
          for (const line of warningLines(converted.conversion.warnings)) this.log(line);
          if (evalReport !== undefined) this.log(evalLine(evalReport));
        }
        return result;
      }
      const summary = await convertCheckpoint(args.source, { ...options, ...(embeddings === undefined || embeddings === "q8_0" ? {} : { embeddings }) });
      progress.end();
      result = evalReport === undefined ? summary : { ...summary, eval: evalReport };
      if (flags.markdown) this.log(markdownConvertSummary(result));
      else {
        this.log(renderConvertSummary(summary));
        if (evalReport !== undefined) this.log(evalLine(evalReport));
      }
      return result;
    } finally {
      progress.end();
      interrupt.dispose();
    }
  }
}

function evalLine(report: EvalReport): string {
  const c = report.comparisons[0]!;
  const verdict = c.checks.some((k) => k.enforced) ? "passed" : "reported (lossy conversion, thresholds not enforced)";
  return `  eval      ${verdict}: ${report.tokens.length} tokens, min cosine ${c.summary.minCosine.toFixed(6)}, top-1 agreement ${(100 * c.summary.top1Agreement).toFixed(1)}%, mean KL ${c.summary.meanKl.toExponential(2)}, perplexity ${c.perplexity?.toFixed(3) ?? "-"} (source ${report.source.perplexity?.toFixed(3) ?? "-"})`;
}
