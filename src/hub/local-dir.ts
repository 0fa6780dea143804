import { createHash, randomBytes } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { B158Error, ioError } from "../errors.js";
import { fileSha256 } from "../io/file-hash.js";
import { globToRegExp } from "../model/names.js";
import { DEFAULT_INCLUDE, type PullResult } from "./pull.js";

/**
 * `b158 pull --local-dir DIR`, like `hf download --local-dir`: after the pull has verified every
 * file into the HF cache, each one is copied to DIR/<path in the repo> (a copy-on-write clone where
 * the filesystem has them), so tools that want plain files in a folder (llama.cpp, bitnet.cpp, a
 * Docker build) get them, and the cache keeps its own copy. A file DIR already holds with the
 * Hub's hash is left alone; every copy goes through a temp file renamed into place, so an
 * interrupted copy never leaves a partial file under a real name.
 */
export interface LocalDirFile {
  readonly path: string;
  /** Where the file now is. */
  readonly localPath: string;
  readonly size: number;
  /** False when DIR already held this exact file. */
  readonly copied: boolean;
}

export interface LocalDirResult {
  readonly dir: string;
  readonly files: readonly LocalDirFile[];
}

export interface LocalDirOptions {
  /** The pull's --include / --exclude: an offline pull lists its whole snapshot, so they are applied here too. */
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  readonly signal?: AbortSignal;
}

export async function copyToLocalDir(result: PullResult, dir: string, options: LocalDirOptions = {}): Promise<LocalDirResult> {
  const root = resolve(dir);
  const include = (options.include ?? DEFAULT_INCLUDE).map(globToRegExp);
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const wanted = result.files.filter((f) => include.some((g) => g.test(f.path)) && !exclude.some((g) => g.test(f.path)));
  const files: LocalDirFile[] = [];
  for (const file of wanted) {
    if (options.signal?.aborted) {
      throw new B158Error("E_INTERRUPTED", `${root}: copying out of the cache was interrupted after ${files.length} of ${wanted.length} files`, {
        hint: "The cache holds every file: run the same command again to finish the copy (nothing is downloaded again).",
        details: { dir: root, copied: files.map((f) => f.path) },
      });
    }
    const localPath = resolve(root, file.path);
    // the paths come from the Hub's listing (checked by pull); never write outside DIR whatever they say
    if (relative(root, localPath).startsWith(`..${sep}`) || relative(root, localPath) === "..") {
      throw new B158Error("E_HUB_SPEC", `${file.path}: a repo path that leaves ${root}`, { details: { file: file.path } });
    }
    const cached = join(result.snapshotDir, file.path);
    if (!(await stat(cached).catch(() => undefined))?.isFile()) continue; // an offline snapshot's subfolder
    const hash = file.hash !== "" ? { kind: file.hashKind, value: file.hash } : { kind: "sha256" as const, value: await fileSha256(cached) };
    if (await holds(localPath, file.size, hash)) {
      files.push({ path: file.path, localPath, size: file.size, copied: false });
      continue;
    }
    const temp = join(dirname(localPath), `.${file.path.split("/").pop()}.${randomBytes(4).toString("hex")}.incomplete`);
    try {
      await mkdir(dirname(localPath), { recursive: true });
      await copyFile(cached, temp, constants.COPYFILE_FICLONE);
      await rename(temp, localPath);
    } catch (cause) {
      await rm(temp, { force: true });
      throw ioError(localPath, "copy out of the Hugging Face cache", cause);
    }
    files.push({ path: file.path, localPath, size: file.size, copied: true });
  }
  return { dir: root, files };
}

/** True when `path` is a file of `size` bytes with the given hash (a git blob sha1 counts the blob header, as git does). */
async function holds(path: string, size: number, hash: { kind: "sha256" | "git-sha1"; value: string }): Promise<boolean> {
  const found = await stat(path).catch(() => undefined);
  if (found === undefined || !found.isFile() || found.size !== size) return false;
  if (hash.kind === "sha256") return (await fileSha256(path)) === hash.value;
  const sha1 = createHash("sha1").update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) sha1.update(chunk as Buffer);
  return sha1.digest("hex") === hash.value;
}
