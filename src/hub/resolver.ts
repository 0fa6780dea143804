import { existsSync } from "node:fs";
import type { CheckpointFiles } from "../checkpoint/files.js";
import { localCheckpointFiles } from "../checkpoint/local.js";
import type { ResolveOptions, SourceResolver } from "../checkpoint/resolve.js";
import { hubEnv } from "./env.js";
import { remoteCheckpointFiles } from "./remote-files.js";
import { pull, type PullOptions } from "./pull.js";
import { parseHubSpec } from "./spec.js";

const BARE_REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*(@\S+)?$/;

/**
 * Hub sources for every command: `hf://org/name[@rev]`, and a plain `org/name` when no such local
 * path exists. The files are pulled into the HF cache (or found there offline), then read locally.
 */
export function hubResolver(options: PullOptions = {}): SourceResolver {
  return {
    name: "hub",
    async claims(spec) {
      return spec.startsWith("hf://") || (BARE_REPO.test(spec) && !existsSync(spec));
    },
    async resolve(spec, resolveOptions: ResolveOptions = {}): Promise<CheckpointFiles> {
      const env = options.env ?? hubEnv();
      // Headers only, online: range reads, no weights downloaded. Offline, the cache serves both.
      if (resolveOptions.access === "headers" && !env.offline) return remoteCheckpointFiles(parseHubSpec(spec), { env, ...(options.retry ? { retry: options.retry } : {}) });
      const pullOptions = resolveOptions.onDownload === undefined ? options : { ...options, onProgress: resolveOptions.onDownload };
      const result = await pull(parseHubSpec(spec), { ...pullOptions, ...(resolveOptions.signal === undefined ? {} : { signal: resolveOptions.signal }) });
      const local = await localCheckpointFiles(result.snapshotDir);
      return { ...local, label: `hf://${result.repo}@${result.revision}`, origin: { kind: "hub", repo: result.repo, revision: result.revision, commit: result.commit } };
    },
  };
}
