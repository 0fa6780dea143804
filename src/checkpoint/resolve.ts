import { statSync } from "node:fs";
import { B158Error } from "../errors.js";
import type { CheckpointFiles } from "./files.js";
import { localCheckpointFiles } from "./local.js";
import { hubResolver } from "../hub/resolver.js";
import type { PullProgress } from "../hub/pull.js";

/**
 * Every command's `<source>` argument is resolved here and nowhere else. A resolver claims the
 * spec strings it understands; the Hub resolver (hf://org/name@rev, org/name) registers in front
 * of the local one later, without touching any command.
 */
export interface ResolveOptions {
  /**
   * "full" (default): every byte will be read, so remote files are fetched (into the HF cache).
   * "headers": only headers and small files will be read; remote sources may serve them by range.
   */
  readonly access?: "full" | "headers";
  /** Stops a download the source needs (a Hub pull) with E_INTERRUPTED. */
  readonly signal?: AbortSignal;
  /** Progress of a Hub download into the cache (a remote source read in full). */
  readonly onDownload?: (progress: PullProgress) => void;
}

export interface SourceResolver {
  readonly name: string;
  /** True when this resolver should handle `spec`; may look at the file system. */
  claims(spec: string): Promise<boolean>;
  resolve(spec: string, options?: ResolveOptions): Promise<CheckpointFiles>;
}

const localResolver: SourceResolver = {
  name: "local",
  async claims(spec) {
    return !spec.startsWith("hf://");
  },
  resolve: (spec) => localCheckpointFiles(spec),
};

const resolvers: SourceResolver[] = [hubResolver(), localResolver];

/** Adds a resolver that is consulted before the existing ones. */
export function registerSourceResolver(resolver: SourceResolver): void {
  resolvers.unshift(resolver);
}

export async function resolveSource(spec: string, options: ResolveOptions = {}): Promise<CheckpointFiles> {
  if (!spec.startsWith("hf://") && looksLocal(spec)) return localResolver.resolve(spec, options);
  for (const resolver of resolvers) {
    if (!(await resolver.claims(spec))) continue;
    // a bare org/name that is no local path: say both were tried when the Hub fails too
    if (resolver.name === "hub" && !spec.startsWith("hf://")) return resolver.resolve(spec, options).catch((error: unknown) => Promise.reject(triedHub(spec, error)));
    return resolver.resolve(spec, options);
  }
  throw new B158Error("E_SOURCE_UNRECOGNIZED", `${spec}: no source resolver understands this`, {
    details: { source: spec },
    hint: "Pass a local directory, a .safetensors file, or hf://org/name[@revision].",
  });
}

/**
 * A source people meant as a path, even though it does not exist: never a Hub repo id. Anything
 * that starts with `.`, `/` or `~`, has a backslash, more than one `/` or a file extension, or whose
 * first segment is a local directory (`fixtures/example` where `fixtures/` exists).
 */
export function looksLocal(spec: string): boolean {
  if (/^[.~/]|\\/.test(spec) || spec.split("/").length !== 2) return true;
  if (/\.(safetensors|json|gguf|b158)$/i.test(spec)) return true;
  const first = spec.split("/")[0]!;
  try {
    return statSync(first).isDirectory();
  } catch {
    return false;
  }
}

function triedHub(spec: string, error: unknown): unknown {
  if (!(error instanceof B158Error) || !error.code.startsWith("E_HUB_") || error.code === "E_HUB_SPEC") return error;
  return new B158Error(error.code, `no local path ${spec}; tried Hub repo ${spec}: ${error.message}`, {
    hint: `For a local checkpoint, check the path (from ${process.cwd()}); for the Hub, write hf://${spec}.${error.hint === undefined ? "" : ` ${error.hint}`}`,
    details: { ...error.details, source: spec, tried: ["local path", "Hub repo"] },
    cause: error.cause,
  });
}
