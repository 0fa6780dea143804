import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { B158Error } from "../errors.js";
import { hubEnv, withToken } from "../hub/env.js";
import { push, type PushResult } from "../hub/push.js";
import { formatBytes } from "../report/format.js";

export default class Push extends B158Command {
  static override summary = "Publish .b158 and GGUF files to the Hugging Face Hub with a model card and a manifest.";
  static override description = `Creates the repo if it is missing, uploads the files (plain LFS, never xet), a generated model card README.md and b158-manifest.json. The card names the source as base_model (with base_model_relation: quantized), its license (the source's model card, a GGUF's general.license, or --license), a table of the files, and for each file the runtimes that load it with the exact commands to download and run it (b158 run for .b158, llama-cli for TQ/Q2_0 GGUFs, bitnet.cpp for I2_S/TL1/TL2 GGUFs). Pushing content the branch already holds makes no new commit, so CI can run it on every build. Needs a token with write access (HF_TOKEN, never printed); honours HF_ENDPOINT.

Usage: b158 push <file.b158|file.gguf>... <org/name>`;

  static override examples = [
    { description: "Publish one file", command: "<%= config.bin %> <%= command.id %> model-tq2_0.b158 my-org/model-b158" },
    { description: "A .b158 and the GGUFs made from it, as a pull request", command: "<%= config.bin %> <%= command.id %> model-i2_s.b158 model-i2_s.gguf model-tq2_0.gguf my-org/model-b158 --create-pr" },
    { description: "Show the card and the file list; nothing is written to the Hub", command: "<%= config.bin %> <%= command.id %> model.b158 my-org/model-b158 --dry-run" },
    { description: "A GGUF from a local checkout: say what it is and its license", command: "<%= config.bin %> <%= command.id %> model.gguf my-org/model-gguf --base-model 1bitLLM/bitnet_b1_58-large --license mit" },
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
    "dry-run": Flags.boolean({ description: "Build the card and manifest and print the card; nothing is written to the Hub (the source's model card is read, for its license)." }),
    license: Flags.string({ description: "The card's license id (mit, apache-2.0, llama3.1, other...). Default: the source's model card, or a GGUF's general.license.", helpValue: "<id>" }),
    "base-model": Flags.string({ description: "The Hub model the files were converted from, when they do not record it (a local source, a GGUF from elsewhere).", helpValue: "<org/name>" }),
    token: Flags.string({ description: "Hugging Face token with write access (hf_...), instead of HF_TOKEN; never printed. Prefer HF_TOKEN: a flag is visible in the process list.", helpValue: "<hf_...>" }),
    ...progressFlags,
  };

  async run(): Promise<PushResult> {
    const { argv, flags } = await this.parse(Push);
    const positional = argv as string[];
    if (positional.length < 2) {
      throw new B158Error("E_USAGE", "push needs at least one file and a repo: b158 push <file.b158|file.gguf>... <org/name>", { hint: "For example: b158 push model.b158 my-org/model-b158" });
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
      env: withToken(hubEnv(), flags.token),
      ...(flags.license === undefined ? {} : { license: flags.license }),
      ...(flags["base-model"] === undefined ? {} : { baseModel: flags["base-model"] }),
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
    if (!this.jsonEnabled()) for (const d of result.diagnostics) process.stderr.write(`${d.severity} ${d.code}  ${d.message}\n`);
    const files = result.files.map((f) => `  ${f.path} (${formatBytes(f.size)})`).join("\n");
    if (result.dryRun) this.log(`Would push to ${result.url} (${result.branch}):\n${files}\n\nREADME.md:\n\n${result.card}`);
    else if (result.unchanged) this.log(`${result.url} (${result.branch}) already holds these files: no new commit.\n${files}`);
    else this.log(`Pushed to ${result.url}${result.createdRepo ? " (new repo)" : ""}: commit ${result.commit?.oid}\n${files}${result.pullRequestUrl ? `\n  pull request: ${result.pullRequestUrl}` : ""}`);
    return result;
  }
}
