import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { B158Error } from "../errors.js";
import { formatBytes } from "../report/format.js";
import { repoFolder } from "./cache.js";
import type { PullProgress, PullResult } from "./pull.js";
import type { HubSpec } from "./spec.js";

/**
 * What a pull kept and what it resumed, for the people who run it: a Ctrl-C says what is in the
 * cache and that the next run continues from there; the next run says which partial downloads it
 * continued. pull() keeps a partial blob as blobs/<hash>.incomplete and resumes it with a Range
 * request; this module only observes that (it never changes the cache).
 */

/** blobs/<hash>.incomplete of one repo: hash -> bytes already on disk. */
export async function partialDownloads(cacheDir: string, repo: string): Promise<Map<string, number>> {
  const blobs = join(repoFolder(cacheDir, repo), "blobs");
  const partial = new Map<string, number>();
  for (const name of await readdir(blobs).catch(() => [] as string[])) {
    const match = /^([0-9a-f]{40}|[0-9a-f]{64})\.incomplete$/.exec(name);
    if (match === null) continue;
    const size = (await stat(join(blobs, name)).catch(() => undefined))?.size;
    if (size !== undefined && size > 0) partial.set(match[1]!, size);
  }
  return partial;
}

export interface ResumedFile {
  readonly path: string;
  /** Bytes the earlier, interrupted run had left. */
  readonly fromBytes: number;
  readonly size: number;
}

/** The files this pull finished from a partial download an earlier run left (`before`: partialDownloads() taken before the pull). */
export function resumedFiles(result: PullResult, before: ReadonlyMap<string, number>): ResumedFile[] {
  return result.files.flatMap((f) => {
    const fromBytes = before.get(f.hash);
    return f.downloaded && fromBytes !== undefined && fromBytes < f.size ? [{ path: f.path, fromBytes, size: f.size }] : [];
  });
}

export interface KeptFiles {
  readonly complete: readonly { readonly path: string; readonly size: number }[];
  readonly partial: readonly { readonly path: string; readonly bytes: number; readonly size: number }[];
}

/** Follows pull()'s progress events: each file's bytes on disk (cached files report their whole size at once). */
export class PullTracker {
  private readonly files = new Map<string, { bytes: number; size: number }>();

  update(progress: PullProgress): void {
    this.files.set(progress.file, { bytes: progress.fileBytes, size: progress.fileSize });
  }

  kept(): KeptFiles {
    const entries = [...this.files].sort(([a], [b]) => (a < b ? -1 : 1));
    return {
      complete: entries.filter(([, f]) => f.bytes >= f.size).map(([path, f]) => ({ path, size: f.size })),
      partial: entries.filter(([, f]) => f.bytes > 0 && f.bytes < f.size).map(([path, f]) => ({ path, bytes: f.bytes, size: f.size })),
    };
  }
}

/** The error a Ctrl-C during a pull ends with: what the cache kept, and that running the command again resumes. */
export function pullInterrupted(spec: HubSpec, cacheDir: string, kept: KeptFiles, signal?: AbortSignal): B158Error {
  const where = repoFolder(cacheDir, spec.repo);
  const parts: string[] = [];
  if (kept.complete.length > 0) parts.push(`${kept.complete.length} complete file${kept.complete.length === 1 ? "" : "s"} (${formatBytes(kept.complete.reduce((s, f) => s + f.size, 0))})`);
  if (kept.partial.length > 0) parts.push(`partial: ${kept.partial.map((f) => `${f.path} (${formatBytes(f.bytes)} of ${formatBytes(f.size)})`).join(", ")}`);
  const summary = parts.length === 0 ? "nothing had been downloaded yet" : `kept in ${where}: ${parts.join("; ")}`;
  const by = typeof signal?.reason === "string" && /^SIG[A-Z]+$/.test(signal.reason) ? signal.reason : "Ctrl-C";
  return new B158Error("E_INTERRUPTED", `${spec.repo}@${spec.revision}: pull interrupted (${by}); ${summary}`, {
    hint: "Run the same command again to resume: complete files are not downloaded again, and a partial file continues where it stopped.",
    details: { repo: spec.repo, revision: spec.revision, cache: where, complete: kept.complete, partial: kept.partial },
  });
}
