import { B158Error } from "../errors.js";
import type { CheckpointFiles } from "./files.js";
import { localCheckpointFiles } from "./local.js";
import { hubResolver } from "../hub/resolver.js";

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
  for (const resolver of resolvers) {
    if (await resolver.claims(spec)) return resolver.resolve(spec, options);
  }
  throw new B158Error("E_SOURCE_UNRECOGNIZED", `${spec}: no source resolver understands this`, {
    details: { source: spec },
    hint: "Pass a local directory, a .safetensors file, or hf://org/name[@revision].",
  });
}
