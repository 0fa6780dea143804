import { downloadFile, listFiles, modelInfo } from "@huggingface/hub";
import type { CheckpointFiles } from "../checkpoint/files.js";
import { B158Error } from "../errors.js";
import type { ByteSource } from "../io/byte-source.js";
import { hubCall } from "./errors.js";
import { hubEnv, type HubEnv } from "./env.js";
import { retryingFetch, type RetryOptions } from "./fetch.js";
import { writeRef } from "./cache.js";
import { isCommitSha, type HubSpec } from "./spec.js";

/** Small files read whole (config, index, tokenizer JSON); weights are only ever read by range. */
const MAX_TEXT_BYTES = 64 * 1024 * 1024;

/**
 * A Hub revision as CheckpointFiles whose reads are HTTP Range requests: `inspect hf://...` reads
 * safetensors headers (a few KB per shard) and never downloads weights.
 */
export async function remoteCheckpointFiles(spec: HubSpec, options: { env?: HubEnv; retry?: RetryOptions } = {}): Promise<CheckpointFiles> {
  const env = options.env ?? hubEnv();
  const fetch = retryingFetch(options.retry);
  const common = { hubUrl: env.endpoint, fetch, ...(env.token === undefined ? {} : { accessToken: env.token }) };
  const commit = await hubCall(spec, undefined, async () => (await modelInfo({ name: spec.repo, revision: spec.revision, additionalFields: ["sha"], ...common })).sha as string);
  if (!isCommitSha(commit)) throw new B158Error("E_HUB_UNAVAILABLE", `${spec.repo}: no commit sha for revision "${spec.revision}"`);
  if (spec.revision !== commit) await writeRef(env.cacheDir, spec.repo, spec.revision, commit);
  const sizes = new Map<string, number>();
  await hubCall(spec, undefined, async () => {
    for await (const entry of listFiles({ repo: spec.repo, revision: commit, ...common })) if (entry.type === "file") sizes.set(entry.path, entry.lfs?.size ?? entry.size);
  });
  const at = { repo: spec.repo, revision: commit };
  const blobOf = async (name: string) => {
    const blob = await hubCall(at, name, () => downloadFile({ repo: spec.repo, path: name, revision: commit, xet: false, ...common }));
    if (blob === null) throw new B158Error("E_HUB_NOT_FOUND", `${spec.repo}@${commit} has no file "${name}"`);
    return blob;
  };
  const label = `hf://${spec.repo}@${spec.revision}`;
  return {
    label,
    origin: { kind: "hub", repo: spec.repo, revision: spec.revision, commit },
    async list() {
      return [...sizes.keys()].filter((n) => !n.includes("/")).sort();
    },
    async has(name) {
      return sizes.has(name);
    },
    async open(name): Promise<ByteSource> {
      const size = sizes.get(name);
      if (size === undefined) throw new B158Error("E_HUB_NOT_FOUND", `${spec.repo}@${commit} has no file "${name}"`);
      const blob = await blobOf(name);
      return {
        name: `${label}/${name}`,
        size,
        async read(offset, length) {
          if (offset < 0 || length < 0 || offset + length > size) throw new B158Error("E_INTERNAL", `${label}/${name}: read of ${length} bytes at ${offset} is outside the ${size}-byte file`);
          if (length === 0) return new Uint8Array(0);
          const bytes = new Uint8Array(await hubCall(at, name, () => blob.slice(offset, offset + length).arrayBuffer()));
          if (bytes.byteLength !== length) throw new B158Error("E_HUB_UNAVAILABLE", `${label}/${name}: asked for ${length} bytes at ${offset}, got ${bytes.byteLength}`);
          return bytes;
        },
        async close() {},
      };
    },
    async readText(name, maxBytes = MAX_TEXT_BYTES) {
      const size = sizes.get(name) ?? 0;
      if (size > maxBytes) throw new B158Error("E_IO", `${label}/${name}: ${size} bytes is too large for a ${name} file`);
      return hubCall(at, name, async () => (await blobOf(name)).text());
    },
  };
}
