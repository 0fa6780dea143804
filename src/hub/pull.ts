import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { downloadFile, listFiles, modelInfo } from "@huggingface/hub";
import { hubCall } from "./errors.js";
import { B158Error, interruptedError, ioError } from "../errors.js";
import { acquireLock, type LockOwner } from "../io/lock-file.js";
import { globToRegExp } from "../model/names.js";
import { blobPath, fileSize, linkSnapshotFile, readRef, snapshotDir, writeRef } from "./cache.js";
import { hubEnv, type HubEnv } from "./env.js";
import { retryingFetch, type RetryOptions } from "./fetch.js";
import { checkRevision, isCommitSha, type HubSpec } from "./spec.js";

/**
 * `b158 pull`: a revision-pinned, resumable, hash-verified download into the standard HF cache.
 * The revision is resolved to its commit first (refs/<revision> is written), only the files a
 * conversion needs are fetched, each blob is checked against the Hub's hash before the cache may
 * trust it, and a partial blob resumes with a Range request.
 */

/** What a conversion needs; --include / --exclude override. */
export const DEFAULT_INCLUDE = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "*.safetensors",
  "model.safetensors.index.json",
  // sentence-transformers: how an embedding model pools (BitNet-embedding)
  "modules.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
  "*_Pooling/config.json",
];

export interface PullOptions {
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  /** Files downloaded at once. */
  readonly concurrency?: number;
  readonly env?: HubEnv;
  readonly retry?: RetryOptions;
  readonly onProgress?: (progress: PullProgress) => void;
  /** Stops the pull (E_INTERRUPTED); partial blobs stay, to resume from. */
  readonly signal?: AbortSignal;
  /** Called when a blob is locked by another pull, which is then waited for. */
  readonly onWait?: (wait: { file: string; lock: string; owner: LockOwner | undefined }) => void;
}

export interface PullProgress {
  readonly file: string;
  readonly fileBytes: number;
  readonly fileSize: number;
  readonly doneBytes: number;
  readonly totalBytes: number;
}

export interface PulledFile {
  readonly path: string;
  readonly size: number;
  /** The LFS sha256 (large files), or the git blob sha1 (small ones). */
  readonly hash: string;
  readonly hashKind: "sha256" | "git-sha1";
  /** False when the blob was already in the cache. */
  readonly downloaded: boolean;
}

export interface PullResult {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly snapshotDir: string;
  readonly files: readonly PulledFile[];
  readonly offline: boolean;
}

const RESUMABLE = "partial downloads stay in the cache (blobs/<hash>.incomplete) and resume next time";

/**
 * Pulls are safe against each other, in one process or many: each blob is fetched under
 * blobs/<hash>.lock (a pull that finds it held waits, then finds the blob there), files with the
 * same content share one download, and links and refs are made under temp names and renamed.
 */
export async function pull(spec: HubSpec, options: PullOptions = {}): Promise<PullResult> {
  checkRevision(spec.revision, `${spec.repo}@${spec.revision}`);
  try {
    return await pullChecked(spec, options);
  } catch (error) {
    if (options.signal?.aborted) throw interruptedError(`${spec.repo}@${spec.revision}`, "pull", options.signal, RESUMABLE);
    throw error;
  }
}

async function pullChecked(spec: HubSpec, options: PullOptions): Promise<PullResult> {
  const env = options.env ?? hubEnv();
  if (env.offline) return pullOffline(spec, env);
  const retrying = retryingFetch(options.retry);
  const signal = options.signal;
  // the signal goes in before the retries, which stop once it is aborted
  const fetch: typeof globalThis.fetch = signal === undefined ? retrying : (input, init) => retrying(input, { ...init, signal });
  const common = { hubUrl: env.endpoint, fetch, ...(env.token === undefined ? {} : { accessToken: env.token }) };

  const commit = await hubCall(spec, undefined, async () => {
    const info = await modelInfo({ name: spec.repo, revision: spec.revision, additionalFields: ["sha"], ...common });
    return info.sha as string;
  });
  if (!isCommitSha(commit)) throw new B158Error("E_HUB_UNAVAILABLE", `${spec.repo}: the Hub answered revision "${spec.revision}" without a commit sha`);
  if (spec.revision !== commit) await writeRef(env.cacheDir, spec.repo, spec.revision, commit);

  const include = (options.include ?? DEFAULT_INCLUDE).map(globToRegExp);
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const wanted: { path: string; size: number; hash: string; hashKind: PulledFile["hashKind"] }[] = [];
  await hubCall(spec, undefined, async () => {
    for await (const entry of listFiles({ repo: spec.repo, revision: commit, recursive: true, ...common })) {
      if (entry.type !== "file") continue;
      if (!include.some((g) => g.test(entry.path)) || exclude.some((g) => g.test(entry.path))) continue;
      if (entry.path.startsWith("/") || entry.path.split("/").some((part) => part === ".." || part === "." || part === "")) {
        throw new B158Error("E_HUB_UNAVAILABLE", `${spec.repo}@${commit}: the Hub listed a path that leaves the repo: ${JSON.stringify(entry.path)}`, { details: { repo: spec.repo } });
      }
      const lfs = entry.lfs;
      const hash = lfs?.oid ?? entry.oid;
      if (hash === undefined || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(hash)) {
        throw new B158Error("E_HUB_UNAVAILABLE", `${spec.repo}@${commit}: the Hub listed "${entry.path}" without a usable hash`, { details: { repo: spec.repo, file: entry.path } });
      }
      wanted.push({ path: entry.path, size: lfs?.size ?? entry.size, hash, hashKind: lfs ? "sha256" : "git-sha1" });
    }
  });
  if (wanted.length === 0) {
    throw new B158Error("E_HUB_NOT_FOUND", `${spec.repo}@${spec.revision}: no file matches ${(options.include ?? DEFAULT_INCLUDE).join(", ")}`, {
      hint: "Check that the repo holds safetensors weights (b158 pull --include fetches other files).",
    });
  }

  const totalBytes = wanted.reduce((sum, f) => sum + f.size, 0);
  let doneBytes = 0;
  const results: PulledFile[] = new Array(wanted.length);
  let next = 0;
  // After the first failure no worker starts another file, and pull() returns only when all
  // have stopped: nothing keeps downloading behind a rejected promise.
  let failure: { error: unknown } | undefined;
  // byte-identical files share a blob: one download, the others wait for it
  const blobs = new Map<string, Promise<boolean>>();
  const worker = async () => {
    while (next < wanted.length && failure === undefined) {
      const index = next++;
      const file = wanted[index]!;
      try {
        if (signal?.aborted) throw interruptedError(`${spec.repo}@${spec.revision}`, "pull", signal, RESUMABLE);
        const progress = (fileBytes: number, delta: number) => {
          doneBytes += delta;
          options.onProgress?.({ file: file.path, fileBytes, fileSize: file.size, doneBytes, totalBytes });
        };
        const shared = blobs.get(file.hash);
        let downloaded: boolean;
        if (shared === undefined) {
          const fetching = ensureBlob(spec.repo, commit, file, env, common, progress, options);
          blobs.set(file.hash, fetching);
          downloaded = await fetching;
        } else {
          await shared;
          progress(file.size, file.size);
          downloaded = false;
        }
        await linkSnapshotFile(env.cacheDir, spec.repo, commit, file.path, file.hash);
        results[index] = { ...file, downloaded };
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, wanted.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return { repo: spec.repo, revision: spec.revision, commit, snapshotDir: snapshotDir(env.cacheDir, spec.repo, commit), files: results, offline: false };
}

/** HF_HUB_OFFLINE=1: the commit from refs (or the revision itself), the files of its snapshot; no request at all. */
async function pullOffline(spec: HubSpec, env: HubEnv): Promise<PullResult> {
  const commit = isCommitSha(spec.revision) ? spec.revision : await readRef(env.cacheDir, spec.repo, spec.revision);
  const dir = commit === undefined ? undefined : snapshotDir(env.cacheDir, spec.repo, commit);
  const names = dir === undefined ? [] : await readdir(dir).catch(() => [] as string[]);
  if (commit === undefined || names.length === 0) {
    throw new B158Error("E_HUB_OFFLINE", `${spec.repo}@${spec.revision}: HF_HUB_OFFLINE is set and the cache (${env.cacheDir}) does not hold this revision`, {
      hint: "Pull it once with network access (b158 pull), or unset HF_HUB_OFFLINE.",
      details: { repo: spec.repo, revision: spec.revision, cacheDir: env.cacheDir },
    });
  }
  const files: PulledFile[] = [];
  for (const name of names.sort()) {
    const size = await fileSize(join(dir!, name));
    if (size !== undefined) files.push({ path: name, size, hash: "", hashKind: "sha256", downloaded: false });
  }
  return { repo: spec.repo, revision: spec.revision, commit: commit!, snapshotDir: dir!, files, offline: true };
}

type Common = { hubUrl: string; fetch: typeof fetch; accessToken?: string };

/** Makes sure blobs/<hash> holds the verified file; returns whether anything was downloaded. */
async function ensureBlob(
  repo: string,
  commit: string,
  file: { path: string; size: number; hash: string; hashKind: PulledFile["hashKind"] },
  env: HubEnv,
  common: Common,
  progress: (fileBytes: number, delta: number) => void,
  options: PullOptions,
): Promise<boolean> {
  const blob = blobPath(env.cacheDir, repo, file.hash);
  if ((await fileSize(blob)) === file.size) {
    progress(file.size, file.size);
    return false;
  }
  await mkdir(dirname(blob), { recursive: true }).catch((cause: unknown) => Promise.reject(ioError(blob, "create", cause)));
  // one writer per blob (and per blobs/<hash>.incomplete) across processes
  const lockPath = `${blob}.lock`;
  const lock = await acquireLock(lockPath, {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    onWait: (owner) => options.onWait?.({ file: file.path, lock: lockPath, owner }),
  });
  try {
    // another pull may have finished it while this one waited
    if ((await fileSize(blob)) === file.size) {
      progress(file.size, file.size);
      return false;
    }
    return await fetchBlob(repo, commit, file, blob, common, progress, options.signal);
  } finally {
    await lock.release();
  }
}

async function fetchBlob(
  repo: string,
  commit: string,
  file: { path: string; size: number; hash: string; hashKind: PulledFile["hashKind"] },
  blob: string,
  common: Common,
  progress: (fileBytes: number, delta: number) => void,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const incomplete = `${blob}.incomplete`;
  const spec = { repo, revision: commit };
  for (let fresh = 0; fresh < 2; fresh++) {
    await download(spec, file, incomplete, common, progress, signal);
    if ((await hashFile(incomplete, file.hashKind, file.size)) === file.hash) {
      await rename(incomplete, blob).catch((cause: unknown) => Promise.reject(ioError(blob, "move into place", cause)));
      return true;
    }
    await rm(incomplete, { force: true }); // never leave bytes the cache could trust
  }
  throw new B158Error("E_HUB_HASH", `${repo}/${file.path}@${commit}: the downloaded bytes do not match the Hub's ${file.hashKind} ${file.hash}, twice`, {
    hint: "The mirror or a proxy is serving corrupt data; try again later or another HF_ENDPOINT.",
    details: { repo, file: file.path, commit, expected: file.hash },
  });
}

/** Downloads into `incomplete`, resuming from its current size with Range; retries dropped or truncated bodies. */
async function download(spec: HubSpec, file: { path: string; size: number }, incomplete: string, common: Common, progress: (fileBytes: number, delta: number) => void, signal: AbortSignal | undefined): Promise<void> {
  let have = (await fileSize(incomplete)) ?? 0;
  if (have > file.size) {
    await rm(incomplete, { force: true });
    have = 0;
  }
  progress(have, have);
  for (let attempt = 1; have < file.size || file.size === 0; attempt++) {
    try {
      const blob = await hubCall(spec, file.path, () => downloadFile({ repo: spec.repo, path: file.path, revision: spec.revision, xet: false, ...common }));
      if (blob === null) throw new B158Error("E_HUB_NOT_FOUND", `${spec.repo}@${spec.revision} has no file "${file.path}"`, { details: { repo: spec.repo, file: file.path } });
      const handle = await open(incomplete, have === 0 ? "w" : "a").catch((cause: unknown) => Promise.reject(ioError(incomplete, "open", cause)));
      try {
        const reader = (have === 0 ? blob : blob.slice(have)).stream().getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await handle.write(value).catch((cause: unknown) => Promise.reject(ioError(incomplete, "write", cause)));
          have += value.byteLength;
          progress(have, value.byteLength);
        }
      } finally {
        await handle.close();
      }
      if (file.size === 0) return;
    } catch (error) {
      if (signal?.aborted) throw interruptedError(`${spec.repo}/${file.path}`, "download", signal, RESUMABLE);
      if (error instanceof B158Error && error.code !== "E_HUB_UNAVAILABLE") throw error;
      if (attempt >= 5) {
        throw new B158Error("E_HUB_UNAVAILABLE", `${spec.repo}/${file.path}: the download kept failing (${(error as Error).message})`, {
          hint: "Run the same command again: the partial file resumes where it stopped.",
          cause: error,
        });
      }
      have = (await fileSize(incomplete)) ?? 0; // a dropped connection: resume from what reached the disk
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}

async function hashFile(path: string, kind: PulledFile["hashKind"], size: number): Promise<string> {
  const hash = createHash(kind === "sha256" ? "sha256" : "sha1");
  if (kind === "git-sha1") hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
