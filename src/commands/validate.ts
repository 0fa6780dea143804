import { Flags } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { sourceArg, ternarizeFlag, weightsFlag } from "../cli/shared-flags.js";
import { B158Error } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { validateB158Report } from "../report/b158-report.js";
import { validateCheckpoint, type ValidateReport } from "../report/checkpoint-report.js";
import { formatBytes } from "../report/format.js";
import { validateGgufReport } from "../report/gguf-report.js";
import { renderValidateReport } from "../report/render-checkpoint.js";

export default class Validate extends B158Command {
  static override summary = "Check a checkpoint before anyone converts it, or a .b158 or GGUF file before anyone ships it.";
  static override description = `Runs every check inspect runs (headers, index, config.json, shapes against config.json),
then streams all tensor data once: NaN/Inf in float tensors, all-zero or constant weights, packed
U8 weights holding the unused code 3, weight_scale values that are not finite and positive.
Reports every problem with its tensor, and exits ${4} when any is an error (0 otherwise).
For a .b158 file: every payload's sha256 and padding, every ternary payload decoded, degenerate
tensors (all-zero ternary weights, NaN/Inf, zero or non-finite scales), and every payload holding a
code outside the ternary alphabet; damage to the file's structure is reported with its code (exit 3).
For a GGUF file: the container as strictly as llama.cpp's gguf.cpp, the model keys and tensors its
loader requires for arch bitnet / llama / bitnet-b1.58, and every tensor's data (NaN/Inf, block
scales, codes outside the ternary alphabet).`;

  static override examples = [
    { description: "Validate the bundled example", command: "<%= config.bin %> <%= command.id %> fixtures/example" },
    { description: "In CI: fail the job on errors, keep the report", command: "<%= config.bin %> <%= command.id %> ./model --json > validate.json" },
    { description: "Check a converted file before publishing it", command: "<%= config.bin %> <%= command.id %> model.b158" },
    { description: "Check a GGUF before publishing it", command: "<%= config.bin %> <%= command.id %> model.gguf" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: sourceArg };
  static override flags = {
    ternarize: ternarizeFlag,
    weights: weightsFlag,
    strict: Flags.boolean({ description: "Treat warnings as errors." }),
  };

  async run(): Promise<ValidateReport | undefined> {
    const { args, flags } = await this.parse(Validate);
    const progress = this.progress();
    const report = (await isGgufFile(args.source))
      ? await validateGgufReport(args.source)
      : (await isB158File(args.source)) ? await validateB158Report(args.source) : await validateCheckpoint(args.source, { ternarize: flags.ternarize ?? [], ...(flags.weights === undefined ? {} : { weights: flags.weights }) }, (p) =>
      progress(`scanning ${((100 * p.doneBytes) / Math.max(1, p.totalBytes)).toFixed(0)}%  ${formatBytes(p.doneBytes)} / ${formatBytes(p.totalBytes)}  ${p.tensor}`),
    );
    progress.done();
    this.log(renderValidateReport(report));
    const failed = !report.ok || (flags.strict && report.summary.warnings > 0);
    if (failed) {
      const exit = new B158Error("E_VALIDATION_FAILED", "").exitCode;
      if (this.jsonEnabled()) {
        // One JSON document on stdout: the report itself, with "ok": false; the status says failed.
        this.logJson(report);
        process.exitCode = exit;
        return undefined;
      }
      throw new B158Error("E_VALIDATION_FAILED", `${args.source}: ${report.summary.errors} errors${flags.strict ? `, ${report.summary.warnings} warnings (--strict)` : ""}`, {
        details: { errors: report.summary.errors, warnings: report.summary.warnings },
      });
    }
    return report;
  }
}
