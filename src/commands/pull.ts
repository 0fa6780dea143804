import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { downloadProgress } from "../cli/progress.js";
import { pull, DEFAULT_INCLUDE, type PullResult } from "../hub/pull.js";
import { parseHubSpec } from "../hub/spec.js";
import { formatBytes, plural } from "../report/format.js";

export default class Pull extends B158Command {
  static override summary = "Download a checkpoint from the Hugging Face Hub into the standard HF cache.";
  static override description = `Resolves the revision to its commit first (and records it in refs/), downloads only what conversion needs (config, tokenizer and generation files, safetensors and their index), verifies every file against the Hub's sha256 (or git sha1) before the cache may trust it, resumes partial downloads with Range requests, and retries 429/5xx answers and dropped connections.

The cache is Python huggingface_hub's: models pulled here are found offline by Python, and the other way round. Honours HF_ENDPOINT (mirrors), HF_TOKEN or $HF_HOME/token (never printed), HF_HOME, HF_HUB_CACHE, and HF_HUB_OFFLINE=1 (cache only, no request at all).`;

  static override examples = [
    { description: "Pull the packed 2B-4T model", command: "<%= config.bin %> <%= command.id %> microsoft/bitnet-b1.58-2B-4T" },
    { description: "A pinned revision through a mirror", command: "HF_ENDPOINT=https://hf-mirror.example <%= config.bin %> <%= command.id %> hf://tiiuae/Falcon3-1B-Instruct-1.58bit@main" },
    { description: "Only the config and the index", command: "<%= config.bin %> <%= command.id %> org/name --include config.json --include '*.index.json'" },
  ];

  static override enableJsonFlag = true;
  static override args = { repo: Args.string({ required: true, description: "The Hub model: hf://org/name[@revision] or org/name[@revision] (a branch, tag or commit)." }) };
  static override flags = {
    include: Flags.string({ multiple: true, description: `Glob of repo files to fetch (repeatable). Default: ${DEFAULT_INCLUDE.join(", ")}.`, helpValue: "<glob>" }),
    exclude: Flags.string({ multiple: true, description: "Glob of repo files to skip (repeatable).", helpValue: "<glob>" }),
    concurrency: Flags.integer({ min: 1, max: 32, default: 4, description: "Files downloaded at once." }),
    ...progressFlags,
  };

  async run(): Promise<PullResult> {
    const { args, flags } = await this.parse(Pull);
    const progress = this.progress(flags.quiet);
    const result = await pull(parseHubSpec(args.repo), {
      ...(flags.include === undefined ? {} : { include: flags.include }),
      ...(flags.exclude === undefined ? {} : { exclude: flags.exclude }),
      concurrency: flags.concurrency,
      onProgress: downloadProgress(progress, args.repo),
    });
    progress.end();
    const fetched = result.files.filter((f) => f.downloaded);
    this.log(`${result.repo}@${result.revision} -> ${result.commit}${result.offline ? " (offline, from the cache)" : ""}`);
    this.log(`  ${result.snapshotDir}`);
    this.log(`  ${plural(result.files.length, "file")}, ${formatBytes(result.files.reduce((s, f) => s + f.size, 0))}; downloaded ${fetched.length} (${formatBytes(fetched.reduce((s, f) => s + f.size, 0))}), ${result.files.length - fetched.length} already cached`);
    return result;
  }
}
