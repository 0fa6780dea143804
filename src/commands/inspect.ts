import { Flags } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { sourceArg, ternarizeFlag } from "../cli/shared-flags.js";
import { inspectCheckpoint, type CheckpointReport } from "../report/checkpoint-report.js";
import { renderCheckpointReport } from "../report/render-checkpoint.js";

export default class Inspect extends B158Command {
  static override summary = "Show what is inside a checkpoint and what b158 would do with it.";
  static override description = `Reads only headers and config.json (no tensor data): the detected model family and why, the
architecture and dimensions, parameter counts by role, dtypes, the plan for every tensor
(role, action, and which layouts can hold its shape), the estimated output size and bits per
weight for each layout, and every warning. Use --json for CI (schemas/inspect.schema.json).`;

  static override examples = [
    { description: "Inspect the bundled example model", command: "<%= config.bin %> <%= command.id %> fixtures/example" },
    { description: "List every tensor instead of folding identical layers", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T --all" },
    { description: "Machine-readable report for CI", command: "<%= config.bin %> <%= command.id %> ./model --json > plan.json" },
    { description: "A generic model: name the tensors to ternarize", command: "<%= config.bin %> <%= command.id %> ./llama --ternarize 'model.layers.*_proj.weight'" },
  ];

  static override enableJsonFlag = true;
  static override args = { source: sourceArg };
  static override flags = {
    all: Flags.boolean({ description: "List every tensor (by default, layers identical but for their index share one row)." }),
    ternarize: ternarizeFlag,
  };

  async run(): Promise<CheckpointReport> {
    const { args, flags } = await this.parse(Inspect);
    const report = await inspectCheckpoint(args.source, { ternarize: flags.ternarize ?? [] });
    this.log(renderCheckpointReport(report, { all: flags.all }));
    return report;
  }
}
