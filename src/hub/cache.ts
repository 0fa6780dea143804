import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { ioError } from "../errors.js";

/**
 * The standard Hugging Face cache, shared with Python's huggingface_hub:
 *   <cache>/models--org--name/refs/<revision>          the commit sha a branch or tag resolved to
 *   <cache>/models--org--name/blobs/<sha256|git-sha1>  file contents, named by their hash
 *   <cache>/models--org--name/snapshots/<sha>/<path>   relative symlinks into ../../blobs
 * A model pulled by b158 is found offline by Python, and the other way round.
 */
export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

export function blobPath(cacheDir: string, repo: string, etag: string): string {
  return join(repoFolder(cacheDir, repo), "blobs", etag);
}

export function snapshotDir(cacheDir: string, repo: string, commit: string): string {
  return join(repoFolder(cacheDir, repo), "snapshots", commit);
}

export async function readRef(cacheDir: string, repo: string, revision: string): Promise<string | undefined> {
  try {
    const sha = (await readFile(join(repoFolder(cacheDir, repo), "refs", revision), "utf8")).trim();
    return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/** Writes refs/<revision> atomically (no trailing newline, as Python writes it); the revision is checked (spec.ts) by the caller. */
export async function writeRef(cacheDir: string, repo: string, revision: string, commit: string): Promise<void> {
  const path = join(repoFolder(cacheDir, repo), "refs", revision);
  const temp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, commit);
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw ioError(path, "write", cause);
  }
}

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/**
 * Points snapshots/<commit>/<path> at blobs/<etag> with a relative symlink (a copy where symlinks
 * fail), made under a temp name and renamed into place: another pull linking the same file at the
 * same time finds a whole link or none, never a half-made one.
 */
export async function linkSnapshotFile(cacheDir: string, repo: string, commit: string, path: string, etag: string): Promise<string> {
  const link = join(snapshotDir(cacheDir, repo, commit), path);
  const blob = blobPath(cacheDir, repo, etag);
  const target = relative(dirname(link), blob);
  const temp = `${link}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await mkdir(dirname(link), { recursive: true });
    const current = await readlink(link).catch(() => undefined);
    if (current === target) return link;
    try {
      await symlink(target, temp);
    } catch {
      await copyFile(blob, temp);
    }
    await rename(temp, link);
  } catch (cause) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw ioError(link, "link into the cache", cause);
  }
  return link;
}
