import { createHash } from "node:crypto";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import { commitIter, createRepo, HubApiError, listFiles, type CommitOperation } from "@huggingface/hub";
import { B158Error } from "../errors.js";
import { openB158File } from "../formats/b158/read.js";
import { formatBytes } from "../report/format.js";
import { describeSchemaErrors, getValidator } from "../schemas.js";
import { fileSha256 } from "../io/file-hash.js";
import { bitsPerWeightByRole } from "../report/bits-per-weight.js";
import { TOOL } from "../version.js";
import { hubCall } from "./errors.js";
import { hubEnv, type HubEnv } from "./env.js";
import { retryingFetch, type RetryOptions } from "./fetch.js";
import { parseHubSpec } from "./spec.js";

/**
 * `b158 push`: publish .b158 files with a generated model card and a manifest, for CI pipelines.
 * Everything pushed is a pure function of the files, so re-pushing identical content is detected
 * (against the branch's current hashes) and makes no commit. Uploads use plain LFS, never xet.
 */
export interface PushOptions {
  readonly files: readonly string[];
  readonly repo: string;
  readonly private?: boolean;
  readonly branch?: string;
  readonly createPr?: boolean;
  /** Build the card and manifest and say what would change; no request at all. */
  readonly dryRun?: boolean;
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
}

interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
  format: "b158";
  layout: string;
  family: string;
  architecture: string | null;
  source: object;
  options: object;
  tensors: number;
  bitsPerWeight: Record<string, number>;
}

export async function push(options: PushOptions): Promise<PushResult> {
  const env = options.env ?? hubEnv();
  const { repo } = parseHubSpec(options.repo);
  const branch = options.branch ?? "main";
  const manifestFiles = await Promise.all(
    options.files.map((file) => {
      options.onProgress?.({ phase: "hashing", file });
      return describeFile(file);
    }),
  );
  const names = manifestFiles.map((f) => f.path);
  if (new Set(names).size !== names.length) throw new B158Error("E_USAGE", `two files share a name: ${names.join(", ")}`, { hint: "Rename the .b158 files so each has its own name in the repo." });
  const manifest = { schemaVersion: 1, tool: TOOL, files: manifestFiles };
  const validate = getValidator("manifest");
  if (!validate(manifest)) throw new B158Error("E_INTERNAL", `the manifest breaks its schema: ${describeSchemaErrors(validate.errors)}`);
  const card = modelCard(repo, manifestFiles);
  const uploads: { path: string; bytes?: Uint8Array; file?: string; sha256: string; size: number; lfs: boolean }[] = [
    ...manifestFiles.map((f, i) => ({ path: f.path, file: options.files[i]!, sha256: f.sha256, size: f.size, lfs: true })),
    text("README.md", card),
    text("b158-manifest.json", JSON.stringify(manifest, null, 2) + "\n"),
  ];
  const url = `${env.endpoint}/${repo}`;
  const summary = uploads.map(({ path, size, sha256 }) => ({ path, size, sha256 }));
  if (options.dryRun) return { repo, branch, url, files: summary, commit: null, pullRequestUrl: null, unchanged: false, dryRun: true, createdRepo: false };

  if (env.token === undefined) {
    throw new B158Error("E_HUB_AUTH", `${repo}: pushing needs a token with write access`, { hint: "Set HF_TOKEN (in CI, from a secret)." });
  }
  if (!env.token.startsWith("hf_")) throw new B158Error("E_HUB_AUTH", "the token does not look like a Hugging Face token (hf_...)", { hint: "Check HF_TOKEN." });
  const fetch = retryingFetch(options.retry);
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
    if (same) return { repo, branch, url, files: summary, commit: null, pullRequestUrl: null, unchanged: true, dryRun: false, createdRepo };
  }

  const operations: CommitOperation[] = uploads.map((u) => ({
    operation: "addOrUpdate",
    path: u.path,
    content: u.file !== undefined ? pathToFileURL(u.file) : new Blob([u.bytes! as Uint8Array<ArrayBuffer>]),
  }));
  const title = `b158: ${manifestFiles.map((f) => `${f.path} (${f.layout})`).join(", ")}`;
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
    repo,
    branch,
    url,
    files: summary,
    commit: output ? { oid: output.commit.oid, url: output.commit.url } : null,
    pullRequestUrl: output?.pullRequestUrl ?? null,
    unchanged: false,
    dryRun: false,
    createdRepo,
  };
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

async function describeFile(path: string): Promise<ManifestFile> {
  const file = await openB158File(path);
  try {
    const bitsPerWeight = bitsPerWeightByRole(
      file.tensors.map((t) => ({ role: t.role, bytes: t.length, weights: t.shape.reduce((a, b) => a * b, 1) })),
      file.size,
    );
    return {
      path: basename(path),
      size: file.size,
      sha256: await fileSha256(path),
      format: "b158",
      layout: file.header.provenance.options.layout,
      family: file.header.model.family,
      architecture: file.header.model.architecture,
      source: file.header.provenance.source,
      options: file.header.provenance.options,
      tensors: file.tensors.length,
      bitsPerWeight,
    };
  } finally {
    await file.close();
  }
}

/** README.md: YAML front matter (base_model, tags), a table of layouts, and how to load the files. */
export function modelCard(repo: string, files: readonly ManifestFile[]): string {
  const sources = [...new Set(files.map((f) => (f.source as { repo?: string }).repo).filter((r): r is string => r !== undefined))];
  const layouts = [...new Set(files.map((f) => f.layout))].sort();
  const front = [
    "---",
    ...(sources.length === 1 ? [`base_model: ${sources[0]}`] : sources.length > 1 ? ["base_model:", ...sources.map((s) => `  - ${s}`)] : []),
    "library_name: b158",
    "pipeline_tag: text-generation",
    "tags:",
    ...["bitnet", "ternary", "1.58-bit", "b158", ...layouts].map((t) => `  - ${t}`),
    "---",
  ];
  const origin = sources.length > 0 ? `[${sources.join(", ")}](https://huggingface.co/${sources[0]})` : "a local checkpoint";
  const commits = files.map((f) => (f.source as { commit?: string }).commit).filter((c): c is string => c !== undefined);
  const rows = files.map(
    (f) => `| \`${f.path}\` | ${f.layout} | ${formatBytes(f.size)} | ${(f.bitsPerWeight["ternary-linear"] ?? 0).toFixed(3)} | ${f.bitsPerWeight.file!.toFixed(3)} | \`${f.sha256.slice(0, 16)}…\` |`,
  );
  const first = files[0]!;
  return [
    ...front,
    "",
    `# ${repo.split("/")[1]}`,
    "",
    `Packed ternary (BitNet b1.58) weights of ${origin}${commits.length > 0 ? ` at commit \`${commits[0]}\`` : ""}, converted with b158 ${TOOL.version}. Each file is a self-contained .b158 container (specified in docs/FORMAT.md of the b158 npm package): every payload in exactly the bytes its kernel reads, with its sha256, plus the model config and tokenizer.`,
    "",
    "| file | layout | size | bits/weight (ternary) | bits/weight (file) | sha256 |",
    "|---|---|---|---|---|---|",
    ...rows,
    "",
    "Layouts: `i2_s`, `tl1`, `tl2` are bitnet.cpp's kernels; `tq1_0`, `tq2_0` are llama.cpp's.",
    "",
    "## How to load",
    "",
    "```sh",
    `npx b158 pull ${repo} --include '*.b158'`,
    `npx b158 validate ${first.path}      # re-checks every hash before you use it`,
    `npx b158 inspect ${first.path}`,
    "```",
    "",
    "```js",
    'import { openB158File } from "b158";',
    `const file = await openB158File("${first.path}");`,
    "const { codes, scale } = await file.decodeTernary(file.tensors.find((t) => t.role === \"ternary-linear\").name);",
    "```",
    "",
    "`b158-manifest.json` lists each file's hash, layout and conversion options.",
    "",
  ].join("\n");
}
