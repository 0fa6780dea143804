import { Args, Flags } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { abortOnInterrupt } from "../cli/interrupt.js";
import { downloadProgress } from "../cli/progress.js";
import { B158Error } from "../errors.js";
import { hubEnv, withToken } from "../hub/env.js";
import { copyToLocalDir, type LocalDirResult } from "../hub/local-dir.js";
import { pull, DEFAULT_INCLUDE, type PullResult } from "../hub/pull.js";
import { partialDownloads, pullInterrupted, PullTracker, resumedFiles, type ResumedFile } from "../hub/resume.js";
import { parseHubSpec, withRevision } from "../hub/spec.js";
import { formatBytes, plural } from "../report/format.js";

export type PullCommandResult = PullResult & {
  /** Partial downloads an earlier, interrupted run left that this one finished. */
  readonly resumed: readonly ResumedFile[];
  /** --local-dir: where the files were copied. */
  readonly localDir: LocalDirResult | null;
};

export default class Pull extends B158Command {
  static override summary = "Download a checkpoint (or packed files) from the Hugging Face Hub into the standard HF cache.";
  static override description = `Resolves the revision to its commit first (and records it in refs/), downloads only what conversion needs (config, tokenizer and generation files, safetensors and their index; --include for anything else, e.g. '*.gguf'), verifies every file against the Hub's sha256 (or git sha1) before the cache may trust it, resumes partial downloads with Range requests, and retries 429/5xx answers and dropped connections. Ctrl-C keeps what was downloaded: the next run resumes it.

The cache is Python huggingface_hub's: models pulled here are found offline by Python, and the other way round. --local-dir also copies the files out of the cache into a folder, as \`hf download --local-dir\` does. Honours HF_ENDPOINT (mirrors), HF_TOKEN or $HF_HOME/token (never printed), HF_HOME, HF_HUB_CACHE, and HF_HUB_OFFLINE=1 (cache only, no request at all).`;

  static override examples = [
    { description: "Pull the 2B-4T checkpoint", command: "<%= config.bin %> <%= command.id %> microsoft/bitnet-b1.58-2B-4T" },
    { description: "A pinned revision through a mirror", command: "HF_ENDPOINT=https://hf-mirror.example <%= config.bin %> <%= command.id %> hf://tiiuae/Falcon3-1B-Instruct-1.58bit --revision main" },
    { description: "One GGUF into a folder, for llama.cpp", command: "<%= config.bin %> <%= command.id %> my-org/model-b158 --include model-tq2_0.gguf --local-dir models/model-b158" },
    { description: "In scripts: print only the folder", command: "dir=$(<%= config.bin %> <%= command.id %> org/name --quiet)" },
  ];

  static override enableJsonFlag = true;
  static override args = { repo: Args.string({ required: true, description: "The Hub model: hf://org/name[@revision] or org/name[@revision] (a branch, tag or commit)." }) };
  static override flags = {
    include: Flags.string({ multiple: true, description: `Glob of repo files to fetch (repeatable). Default: ${DEFAULT_INCLUDE.join(", ")}.`, helpValue: "<glob>" }),
    exclude: Flags.string({ multiple: true, description: "Glob of repo files to skip (repeatable).", helpValue: "<glob>" }),
    revision: Flags.string({ description: "Branch, tag or commit sha (default main); the same as org/name@revision.", helpValue: "<rev>" }),
    "local-dir": Flags.string({ description: "Also copy the files into this folder (DIR/<path in the repo>), as hf download --local-dir does; files it already holds with the Hub's hash are left alone.", helpValue: "<dir>" }),
    token: Flags.string({ description: "Hugging Face token (hf_...), instead of HF_TOKEN or $HF_HOME/token; never printed. Prefer HF_TOKEN: a flag is visible in the process list.", helpValue: "<hf_...>" }),
    quiet: Flags.boolean({ char: "q", helpGroup: "GLOBAL", description: "No progress and no summary: print only the folder the files are in (--local-dir, else the cache snapshot)." }),
    concurrency: Flags.integer({ min: 1, max: 32, default: 4, description: "Files downloaded at once." }),
  };

  async run(): Promise<PullCommandResult> {
    const { args, flags } = await this.parse(Pull);
    const spec = withRevision(parseHubSpec(args.repo), args.repo, flags.revision);
    const env = withToken(hubEnv(), flags.token);
    const filters = { ...(flags.include === undefined ? {} : { include: flags.include }), ...(flags.exclude === undefined ? {} : { exclude: flags.exclude }) };
    const partialBefore = env.offline ? new Map<string, number>() : await partialDownloads(env.cacheDir, spec.repo);
    const tracker = new PullTracker();
    const stop = abortOnInterrupt();
    const progress = this.progress(flags.quiet);
    const onDownload = downloadProgress(progress, spec.repo);
        try {
      let result: PullResult;
      try {
        result = await pull(spec, {
          ...filters,
          env,
          concurrency: flags.concurrency,
          signal: stop.signal,
          onWait: ({ file, owner }) => progress.note(`waiting for another pull${owner === undefined ? "" : ` (process ${owner.pid} on ${owner.host})`} to finish ${file}`),
          onProgress: (p) => {
            tracker.update(p);
            onDownload(p);
          },
        });
      } catch (error) {
        if (stop.signal.aborted || (error instanceof B158Error && error.code === "E_INTERRUPTED")) throw pullInterrupted(spec, env.cacheDir, tracker.kept(), stop.signal);
        throw error;
      } finally {
        progress.end();
      }
      const resumed = resumedFiles(result, partialBefore);
      const localDir = flags["local-dir"] === undefined ? null : await copyToLocalDir(result, flags["local-dir"], { ...filters, signal: stop.signal });
      if (flags.quiet) this.log(localDir?.dir ?? result.snapshotDir);
      else this.log(renderPull(result, resumed, localDir));
      return { ...result, resumed, localDir };
    } finally {
      stop.dispose();
    }
  }
}

function renderPull(result: PullResult, resumed: readonly ResumedFile[], localDir: LocalDirResult | null): string {
  const fetched = result.files.filter((f) => f.downloaded);
  const lines = [
    `${result.repo}@${result.revision} -> ${result.commit}${result.offline ? " (offline, from the cache)" : ""}`,
    `  ${result.snapshotDir}`,
    `  ${plural(result.files.length, "file")}, ${formatBytes(result.files.reduce((s, f) => s + f.size, 0))}; downloaded ${fetched.length} (${formatBytes(fetched.reduce((s, f) => s + f.size, 0))}), ${result.files.length - fetched.length} already cached`,
    ...resumed.map((r) => `  resumed ${r.path} from ${formatBytes(r.fromBytes)} of ${formatBytes(r.size)} (an earlier run was interrupted)`),
  ];
  if (localDir !== null) {
    const copied = localDir.files.filter((f) => f.copied).length;
    lines.push(`  copied to ${localDir.dir}: ${copied} file${copied === 1 ? "" : "s"}${copied < localDir.files.length ? `, ${localDir.files.length - copied} already there` : ""}`);
  }
  return lines.join("\n");
}
