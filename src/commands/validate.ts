import { Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { downloadProgress } from "../cli/progress.js";
import { anySourceArg, markdownFlag, ternarizeFlag, weightsFlag } from "../cli/shared-flags.js";
import type { FileScanProgress } from "../convert/validate-b158.js";
import { B158Error } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { validateB158Report } from "../report/b158-report.js";
import { validateCheckpoint, type ValidateReport } from "../report/checkpoint-report.js";
import { formatBytes, formatShape, plural } from "../report/format.js";
import { validateGgufReport } from "../report/gguf-report.js";
import { markdownValidateReport, renderValidateReport, validationFailed } from "../report/render-checkpoint.js";

export default class Validate extends B158Command {
  static override summary = "Check a checkpoint before anyone converts it, or a .b158 or GGUF file before anyone ships it.";
  static override description = `Runs every check inspect runs (headers, index, config.json, shapes against config.json), then streams all tensor data once: NaN/Inf in float tensors, all-zero or constant weights, packed U8 weights holding the unused code 3, weight_scale values that are not finite and positive. Reports every problem with its tensor, and exits ${4} when any is an error (0 otherwise).

For a .b158 file: every payload's sha256 and padding, every ternary payload decoded, degenerate tensors (all-zero ternary weights, NaN/Inf, zero or non-finite scales), and every payload holding a code outside the ternary alphabet; damage to the file's structure is reported with its code (exit 3).

For a GGUF file: the container as strictly as llama.cpp's gguf.cpp, the model keys and tensors its loader requires for arch bitnet / llama / bitnet-b1.58 / qwen3 / gemma3 / minicpm, and every tensor's data (NaN/Inf, block scales, codes outside the ternary alphabet).`;

  static override examples = [
    { description: "Validate the bundled example", command: "<%= config.bin %> <%= command.id %> fixtures/example" },
    { description: "In CI: fail the job on errors, keep the report", command: "<%= config.bin %> <%= command.id %> ./model --json > validate.json" },
    { description: "Check a converted file before publishing it", command: "<%= config.bin %> <%= command.id %> model.b158" },
    { description: "Check a GGUF before publishing it", command: "<%= config.bin %> <%= command.id %> model.gguf" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: anySourceArg };
  static override flags = {
    ternarize: ternarizeFlag,
    weights: weightsFlag,
    strict: Flags.boolean({ description: "Fail (exit 4) on warnings too." }),
    markdown: markdownFlag("the diagnostics"),
    ...progressFlags,
  };

  async run(): Promise<ValidateReport | undefined> {
    const { args, flags } = await this.parse(Validate);
    if (flags.markdown && this.jsonEnabled()) throw new B158Error("E_USAGE", "--markdown and --json both choose what stdout holds: give one", { hint: "Use --json for scripts and --markdown for the CI run page (>> \"$GITHUB_STEP_SUMMARY\")." });
    const progress = this.progress(flags.quiet);
    const onFile = (p: FileScanProgress) => {
      if (p.done === 1) progress.phase(`validating ${plural(p.total, "tensor")}`, { total: p.totalBytes, unit: "bytes", steps: p.total });
      progress.update({ done: p.doneBytes, step: p.done, item: p.tensor, line: `${p.tensor} ${formatShape(p.shape)} ${p.layout.toLowerCase()}  ${formatBytes(p.bytes)}` });
    };
    let report: ValidateReport;
    if (await isGgufFile(args.source)) report = await validateGgufReport(args.source, onFile);
    else if (await isB158File(args.source)) report = await validateB158Report(args.source, onFile);
    else {
      let started = false;
      const options = { ternarize: flags.ternarize ?? [], ...(flags.weights === undefined ? {} : { weights: flags.weights }), onDownload: downloadProgress(progress, args.source) };
      report = await validateCheckpoint(args.source, options, (p) => {
        if (!started) progress.phase(`scanning ${args.source}`, { total: p.totalBytes, unit: "bytes" });
        started = true;
        const s = p.scanned;
        progress.update({ done: p.doneBytes, item: p.tensor, ...(s === undefined ? {} : { step: s.index, line: `${p.tensor} ${formatShape(s.shape)} ${s.dtype.toLowerCase()}  ${formatBytes(s.bytes)}` }) });
      });
    }
    progress.end();
    const strict = flags.strict === true;
    if (flags.markdown) this.log(markdownValidateReport(report, { strict }));
    else this.log(renderValidateReport(report, { strict }));
    if (!validationFailed(report, strict)) return report;
    const exit = new B158Error("E_VALIDATION_FAILED", "").exitCode;
    if (this.jsonEnabled()) {
      // One JSON document on stdout: the report itself, with "ok": false (or warnings under --strict); the status says failed.
      this.logJson(report);
      process.exitCode = exit;
      return undefined;
    }
    const { errors, warnings } = report.summary;
    throw new B158Error("E_VALIDATION_FAILED", `${args.source}: ${plural(errors, "error")}${strict ? `, ${plural(warnings, "warning")} (--strict fails on warnings)` : ""}`, {
      details: { errors, warnings, strict },
      hint: errors > 0 ? "Each problem above names its tensor: fix the checkpoint, or convert from an intact copy." : "Run without --strict to accept the warnings, or address each one above.",
    });
  }
}
