import { Flags } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { anySourceArg, markdownFlag, ternarizeFlag, weightsFlag } from "../cli/shared-flags.js";
import { B158Error } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { inspectB158, type B158Report } from "../report/b158-report.js";
import { inspectCheckpoint, type CheckpointReport } from "../report/checkpoint-report.js";
import { inspectGguf, type GgufReport } from "../report/gguf-report.js";
import { renderB158Report, markdownB158Report } from "../report/render-b158.js";
import { markdownGgufReport, renderGgufReport } from "../report/render-gguf.js";
import { markdownCheckpointReport, renderCheckpointReport } from "../report/render-checkpoint.js";

export default class Inspect extends B158Command {
  static override summary = "Show what is inside a checkpoint and what b158 would do with it, or inside a .b158 or GGUF file.";
  static override description = `Reads headers, config.json and a bounded sample of values (about 1 MiB of the first float linear, to tell latent from already-ternary weights): the detected model family and why, the source semantics (online, stored, packed) and the scale granularity, the architecture and dimensions, parameter counts by role, dtypes, the plan for every tensor (role, action, and which layouts can hold its shape), the estimated output size and bits per weight for each layout, and every warning. Use --json for CI (schemas/inspect.schema.json).

For a .b158 file: the header, and per tensor the layout, parameters, shape, scale (or per-group scales), -1/0/+1 distribution, bits per weight and absolute payload offset (--json: schemas/inspect-b158.schema.json).

For a GGUF file: the container, metadata, tensors, the colliding meanings of its type ids and general.file_type (mainline llama.cpp, bitnet.cpp's 2024 and 2026 forks, PrismML's fork), which table they were read with and why, which runtimes can load it and which compute the wrong FFN activation for it, what b158 refuses to convert (Q1_0, PQ2_0/PTQ1_0, prism.hadamard.* keys), and the checks llama.cpp's loader makes (--json: schemas/inspect-gguf.schema.json).`;

  static override examples = [
    { description: "Inspect the bundled example model", command: "<%= config.bin %> <%= command.id %> fixtures/example" },
    { description: "List every tensor instead of folding identical layers", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T --all" },
    { description: "Machine-readable report for CI", command: "<%= config.bin %> <%= command.id %> ./model --json > plan.json" },
    { description: "What is inside a converted file", command: "<%= config.bin %> <%= command.id %> example.b158" },
    { description: "What is inside a GGUF (ours, or anyone's)", command: "<%= config.bin %> <%= command.id %> ggml-model-i2_s.gguf" },
    { description: "A generic model: name the tensors to ternarize", command: "<%= config.bin %> <%= command.id %> ./llama --ternarize 'model.layers.*_proj.weight'" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: anySourceArg };
  static override flags = {
    all: Flags.boolean({ description: "List every tensor (by default a checkpoint's layers identical but for their index share one row, and a .b158's ternary linears are summarised per role)." }),
    markdown: markdownFlag("the report"),
    ternarize: ternarizeFlag,
    weights: weightsFlag,
  };

  async run(): Promise<CheckpointReport | B158Report | GgufReport> {
    const { args, flags } = await this.parse(Inspect);
    if (flags.markdown && this.jsonEnabled()) throw new B158Error("E_USAGE", "--markdown and --json both choose what stdout holds: give one", { hint: "Use --json for scripts and --markdown for the CI run page (>> \"$GITHUB_STEP_SUMMARY\")." });
    const columns = process.stdout.isTTY === true ? Math.max(60, process.stdout.columns ?? 80) : 80;
    if (await isGgufFile(args.source)) {
      const report = await inspectGguf(args.source);
      this.log(flags.markdown ? markdownGgufReport(report) : renderGgufReport(report, { all: flags.all }));
      return report;
    }
    if (await isB158File(args.source)) {
      const report = await inspectB158(args.source);
      this.log(flags.markdown ? markdownB158Report(report) : renderB158Report(report, { all: flags.all, columns }));
      return report;
    }
    const report = await inspectCheckpoint(args.source, { ternarize: flags.ternarize ?? [], ...(flags.weights === undefined ? {} : { weights: flags.weights }) });
    this.log(flags.markdown ? markdownCheckpointReport(report) : renderCheckpointReport(report, { all: flags.all }));
    return report;
  }
}
