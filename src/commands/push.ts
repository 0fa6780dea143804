import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { B158Error } from "../errors.js";
import { push, type PushResult } from "../hub/push.js";
import { formatBytes } from "../report/format.js";

export default class Push extends B158Command {
  static override summary = "Publish .b158 files to the Hugging Face Hub with a model card.";
  static override description = `Creates the repo if it is missing, uploads the files (plain LFS, never xet), a generated model card README.md (base_model = the source repo, tags bitnet / ternary / b158 / the layouts, a table of layouts, sizes and bits per weight, how to load) and b158-manifest.json. Pushing content the branch already holds makes no new commit, so CI can run it on every build. Needs HF_TOKEN with write access; honours HF_ENDPOINT.`;

  static override examples = [
    { description: "Publish one file", command: "<%= config.bin %> <%= command.id %> model-tq2_0.b158 my-org/model-b158" },
    { description: "Several layouts, private, as a pull request", command: "<%= config.bin %> <%= command.id %> i2_s.b158 tq2_0.b158 my-org/model-b158 --private --create-pr" },
    { description: "See the card and the file list without any request", command: "<%= config.bin %> <%= command.id %> model.b158 my-org/model-b158 --dry-run" },
  ];

  static override strict = false;
  static override usage = "push FILE... REPO";
  static override enableJsonFlag = true;
  static override args = {
    file: Args.string({ required: true, description: "A .b158 file to publish; give several to publish them together (every argument but the last)." }),
    repo: Args.string({ required: true, description: "The Hub repo to publish to: org/name or hf://org/name (the last argument)." }),
  };
  static override flags = {
    private: Flags.boolean({ description: "Create the repo as private (when it does not exist yet)." }),
    branch: Flags.string({ default: "main", description: "Branch to commit to." }),
    "create-pr": Flags.boolean({ description: "Open a pull request instead of committing to the branch." }),
    "dry-run": Flags.boolean({ description: "Build the card and manifest and show what would be pushed; no request." }),
    ...progressFlags,
  };

  async run(): Promise<PushResult> {
    const { argv, flags } = await this.parse(Push);
    const positional = argv as string[];
    if (positional.length < 2) {
      throw new B158Error("E_USAGE", "push needs at least one file and a repo: b158 push <file.b158>... <org/name>", { hint: "For example: b158 push model.b158 my-org/model-b158" });
    }
    const repo = positional[positional.length - 1]!;
    const inputs = positional.slice(0, -1);
    const progress = this.progress(flags.quiet);
    const sizes = new Map(await Promise.all(inputs.map(async (f) => [basename(f), (await stat(f).catch(() => undefined))?.size ?? 0] as const)));
    const sent = new Map<string, number>();
    let phase = "";
    const result = await push({
      files: inputs,
      repo,
      private: flags.private,
      branch: flags.branch,
      createPr: flags["create-pr"],
      dryRun: flags["dry-run"],
      onProgress: (p) => {
        if (p.phase !== phase) {
          phase = p.phase;
          if (p.phase === "uploading") progress.phase(`uploading to ${repo}`, { total: [...sizes.values()].reduce((a, b) => a + b, 0), unit: "bytes" });
          else if (p.phase === "committing") progress.phase(`committing to ${repo}`);
        }
        if (p.phase === "hashing") progress.note(`hashing ${p.file}`);
        else if (p.phase === "uploading" && p.file !== undefined) {
          const size = sizes.get(p.file) ?? 0;
          const before = sent.get(p.file) ?? 0;
          sent.set(p.file, (p.fraction ?? 0) * size);
          const done = [...sent.values()].reduce((a, b) => a + b, 0);
          progress.update({ done, item: p.file, ...(p.fraction === 1 && before < size ? { line: `${p.file}  ${formatBytes(size)}` } : {}) });
        }
      },
    });
    progress.end();
    const files = result.files.map((f) => `  ${f.path} (${formatBytes(f.size)})`).join("\n");
    if (result.dryRun) this.log(`Would push to ${result.url} (${result.branch}):\n${files}`);
    else if (result.unchanged) this.log(`${result.url} (${result.branch}) already holds these files: no new commit.\n${files}`);
    else this.log(`Pushed to ${result.url}${result.createdRepo ? " (new repo)" : ""}: commit ${result.commit?.oid}\n${files}${result.pullRequestUrl ? `\n  pull request: ${result.pullRequestUrl}` : ""}`);
    return result;
  }
}
