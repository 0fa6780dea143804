import { B158Error } from "../errors.js";

/** A model repo and revision: `hf://org/name[@revision]`, or `org/name[@revision]`. */
export interface HubSpec {
  readonly repo: string;
  readonly revision: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

export function parseHubSpec(spec: string): HubSpec {
  const body = spec.startsWith("hf://") ? spec.slice(5) : spec;
  const at = body.indexOf("@");
  const repo = at === -1 ? body : body.slice(0, at);
  const revision = at === -1 ? "main" : body.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every((p) => NAME.test(p) && !p.includes("..")) || revision === "" || /\s|\.\./.test(revision)) {
    throw new B158Error("E_HUB_SPEC", `${spec}: not a Hub model source`, { hint: "Write hf://org/name or hf://org/name@revision (a branch, tag or commit sha)." });
  }
  return { repo, revision };
}

/** True for a 40-hex commit sha. */
export function isCommitSha(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/**
 * `--revision` (as `hf download --revision`): the same as `@revision` in the spec, checked by the
 * same rules; giving both with different values is a usage error.
 */
export function withRevision(spec: HubSpec, written: string, revision: string | undefined): HubSpec {
  if (revision === undefined) return spec;
  const pinned = written.replace(/^hf:\/\//, "").includes("@");
  if (pinned && spec.revision !== revision) {
    throw new B158Error("E_USAGE", `${written} names revision "${spec.revision}" and --revision says "${revision}"`, { hint: "Give the revision once: org/name@revision or --revision." });
  }
  return parseHubSpec(`${spec.repo}@${revision}`);
}
