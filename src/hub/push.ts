import { createHash } from "node:crypto";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import { commitIter, createRepo, HubApiError, listFiles, type CommitOperation } from "@huggingface/hub";
import { B158Error } from "../errors.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { describeSchemaErrors, getValidator } from "../schemas.js";
import { TOOL } from "../version.js";
import { hubCall } from "./errors.js";
import { hubEnv, type HubEnv } from "./env.js";
import { retryingFetch, type RetryOptions } from "./fetch.js";
import { modelCard } from "./model-card.js";
import { describePublishedFile, type PublishedFile } from "./published-file.js";
import { LICENSE_ID, sourceLicense } from "./source-card.js";
import { parseHubSpec } from "./spec.js";

/**
 * `b158 push`: publish .b158 and GGUF files with a generated model card and a manifest, for CI
 * pipelines. Everything pushed is a pure function of the files and the license, so re-pushing
 * identical content is detected (against the branch's current hashes) and makes no commit.
 * Uploads use plain LFS, never xet.
 */
export interface PushOptions {
  readonly files: readonly string[];
  readonly repo: string;
  readonly private?: boolean;
  readonly branch?: string;
  readonly createPr?: boolean;
  /** Build the card and manifest and say what would change; nothing is written to the Hub. */
  readonly dryRun?: boolean;
  /** The card's license; default: the source's model card (or a GGUF's general.license). */
  readonly license?: string;
  /** The model the files were converted from, when they do not record it (a local source, a foreign GGUF). */
  readonly baseModel?: string;
  readonly env?: HubEnv;
  readonly retry?: RetryOptions;
  readonly onProgress?: (progress: PushProgress) => void;
}

/** "hashing": a local file is read for the manifest; "uploading": `fraction` of `file` is sent; "committing": the commit is made. */
export interface PushProgress {
  readonly phase: "hashing" | "uploading" | "committing";
  readonly file?: string;
  readonly fraction?: number;
}

export interface PushResult {
  readonly repo: string;
  readonly branch: string;
  readonly url: string;
  readonly files: readonly { readonly path: string; readonly size: number; readonly sha256: string }[];
  /** The new commit, or null when nothing changed or on a dry run. */
  readonly commit: { readonly oid: string; readonly url: string } | null;
  readonly pullRequestUrl: string | null;
  readonly unchanged: boolean;
  readonly dryRun: boolean;
  readonly createdRepo: boolean;
  /** The README.md pushed (or, on a dry run, that would be). */
  readonly card: string;
  readonly license: string | null;
  /** W_LICENSE_UNKNOWN when the card has no license; W_BASE_MODEL_UNKNOWN when it names no source model. */
  readonly diagnostics: readonly Diagnostic[];
}

/** File names that stay plain in the card's commands, in Markdown, and in repo paths. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export async function push(options: PushOptions): Promise<PushResult> {
  const env = options.env ?? hubEnv();
  const { repo } = parseHubSpec(options.repo);
  const branch = options.branch ?? "main";
  if (options.license !== undefined && !LICENSE_ID.test(options.license)) {
    throw new B158Error("E_USAGE", `--license "${options.license}" is not a license id`, { hint: "Use the id model cards use: mit, apache-2.0, llama3.1, other..." });
  }
  const baseModel = options.baseModel === undefined ? undefined : parseHubSpec(options.baseModel).repo;
  for (const path of options.files) {
    if (!PLAIN_NAME.test(basename(path))) {
      throw new B158Error("E_USAGE", `${path}: push needs plain file names (letters, digits, . _ + -)`, { hint: "Rename the file: its name appears in the repo, in the card's commands and in its Markdown.", details: { file: path } });
    }
  }
  const manifestFiles = await Promise.all(
    options.files.map((file) => {
      options.onProgress?.({ phase: "hashing", file });
      return describePublishedFile(file);
    }),
  );
  const names = manifestFiles.map((f) => f.path);
  if (new Set(names).size !== names.length) throw new B158Error("E_USAGE", `two files share a name: ${names.join(", ")}`, { hint: "Rename the files so each has its own name in the repo." });
  const fetch = retryingFetch(options.retry);

  const diagnostics: Diagnostic[] = [];
  const baseModels = baseModel !== undefined ? [baseModel] : [...new Set(manifestFiles.flatMap((f) => (f.source.repo === undefined ? [] : [f.source.repo])))];
  if (baseModels.length === 0) diagnostics.push({ severity: "warning", code: "W_BASE_MODEL_UNKNOWN", message: "no file records the model it was converted from (a local source, or a GGUF without general.source.repo_url): the card has no base_model; pass --base-model org/name" });
  const license = options.license ?? (await findLicense(manifestFiles, env, fetch, diagnostics));
  const card = modelCard({ repo, branch, endpoint: env.endpoint, files: manifestFiles, baseModels, license, tool: TOOL });
  const manifest = { schemaVersion: 1, tool: TOOL, license, files: manifestFiles };
  const validate = getValidator("manifest");
  if (!validate(manifest)) throw new B158Error("E_INTERNAL", `the manifest breaks its schema: ${describeSchemaErrors(validate.errors)}`);
  const uploads: { path: string; bytes?: Uint8Array; file?: string; sha256: string; size: number; lfs: boolean }[] = [
    ...manifestFiles.map((f, i) => ({ path: f.path, file: options.files[i]!, sha256: f.sha256, size: f.size, lfs: true })),
    text("README.md", card),
    text("b158-manifest.json", JSON.stringify(manifest, null, 2) + "\n"),
  ];
  const url = `${env.endpoint}/${repo}`;
  const summary = uploads.map(({ path, size, sha256 }) => ({ path, size, sha256 }));
  const result = { repo, branch, url, files: summary, card, license, diagnostics };
  if (options.dryRun) return { ...result, commit: null, pullRequestUrl: null, unchanged: false, dryRun: true, createdRepo: false };

  if (env.token === undefined) {
    throw new B158Error("E_HUB_AUTH", `${repo}: pushing needs a token with write access`, { hint: "Set HF_TOKEN (in CI, from a secret)." });
  }
  if (!env.token.startsWith("hf_")) throw new B158Error("E_HUB_AUTH", "the token does not look like a Hugging Face token (hf_...)", { hint: "Check HF_TOKEN." });
  const common = { hubUrl: env.endpoint, fetch, accessToken: env.token };
  const spec = { repo, revision: branch };

  let createdRepo = false;
  try {
    await createRepo({ repo, private: options.private ?? false, ...common });
    createdRepo = true;
  } catch (error) {
    if (!(error instanceof HubApiError && error.statusCode === 409)) await hubCall(spec, undefined, () => Promise.reject(error));
  }

  // Unchanged content makes no commit: compare with what the branch holds now.
  if (!createdRepo && !options.createPr) {
    const remote = await remoteHashes(repo, branch, common);
    const same = uploads.every((u) => remote.get(u.path) === (u.lfs ? u.sha256 : gitSha1(u.bytes!)));
    if (same) return { ...result, commit: null, pullRequestUrl: null, unchanged: true, dryRun: false, createdRepo };
  }

  const operations: CommitOperation[] = uploads.map((u) => ({
    operation: "addOrUpdate",
    path: u.path,
    content: u.file !== undefined ? pathToFileURL(u.file) : new Blob([u.bytes! as Uint8Array<ArrayBuffer>]),
  }));
  const title = `b158: ${manifestFiles.map((f) => `${f.path} (${f.layout ?? f.format})`).join(", ")}`;
  const output = await hubCall(spec, undefined, async () => {
    const steps = commitIter({ repo, title, operations, branch, isPullRequest: options.createPr ?? false, useXet: false, ...common });
    for (let step = await steps.next(); ; step = await steps.next()) {
      if (step.done === true) return step.value;
      const event = step.value;
      if (event.event === "fileProgress" && event.state === "uploading") options.onProgress?.({ phase: "uploading", file: event.path, fraction: event.progress });
      else if (event.event === "phase" && event.phase === "committing") options.onProgress?.({ phase: "committing" });
    }
  });
  return {
    ...result,
    commit: output ? { oid: output.commit.oid, url: output.commit.url } : null,
    pullRequestUrl: output?.pullRequestUrl ?? null,
    unchanged: false,
    dryRun: false,
    createdRepo,
  };
}

/**
 * The card's license: the sources' model cards (at the commit each file records), or a GGUF's
 * general.license. None found, or sources that disagree, is a warning: the card then has none.
 */
async function findLicense(files: readonly PublishedFile[], env: HubEnv, fetch: typeof globalThis.fetch, diagnostics: Diagnostic[]): Promise<string | null> {
  const found = new Map<string, string>();
  const reasons: string[] = [];
  const sources = new Map<string, string>();
  for (const f of files) {
    if (f.license !== null && LICENSE_ID.test(f.license)) found.set(f.license, `${f.path} (general.license)`);
    else if (f.source.repo !== undefined) sources.set(f.source.repo, f.source.commit ?? f.source.revision ?? "main");
  }
  for (const [repo, revision] of sources) {
    const { license, reason } = await sourceLicense(repo, revision, env, fetch);
    if (license !== null) found.set(license, `${repo}'s model card`);
    else reasons.push(reason!);
  }
  if (found.size === 1) return [...found.keys()][0]!;
  const message =
    found.size > 1
      ? `the sources disagree about the license (${[...found].map(([l, from]) => `${l} from ${from}`).join(", ")}): the card names none; pass --license`
      : `the card names no license: ${reasons.length > 0 ? reasons.join("; ") : "no file records where it came from"}; pass --license`;
  diagnostics.push({ severity: "warning", code: "W_LICENSE_UNKNOWN", message });
  return null;
}

function text(path: string, content: string) {
  const bytes = new TextEncoder().encode(content);
  return { path, bytes, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, lfs: false };
}

function gitSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.byteLength}\0`).update(bytes).digest("hex");
}

async function remoteHashes(repo: string, branch: string, common: { hubUrl: string; fetch: typeof fetch; accessToken: string }): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  try {
    for await (const entry of listFiles({ repo, revision: branch, ...common })) {
      if (entry.type === "file") hashes.set(entry.path, entry.lfs?.oid ?? entry.oid ?? "");
    }
  } catch (error) {
    if (error instanceof HubApiError && error.statusCode === 404) return hashes; // a new branch
    await hubCall({ repo, revision: branch }, undefined, () => Promise.reject(error));
  }
  return hashes;
}
