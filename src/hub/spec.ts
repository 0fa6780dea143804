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
  if (parts.length !== 2 || !parts.every((p) => NAME.test(p) && !p.includes(".."))) {
    throw new B158Error("E_HUB_SPEC", `${spec}: not a Hub model source`, { hint: "Write hf://org/name or hf://org/name@revision (a branch, tag or commit sha)." });
  }
  checkRevision(revision, spec);
  return { repo, revision };
}

/**
 * A revision is a branch, tag or commit as git names them (git check-ref-format), and it becomes
 * the path refs/<revision> in the cache: so no empty, "." or ".." component (nor any starting
 * with "."), no "//", no leading or trailing "/", no ".lock" ending, no "@{", no control
 * characters, spaces or any of ~^:?*[\. Checked before the cache is touched.
 */
export function checkRevision(revision: string, spec = revision): void {
  const components = revision.split("/");
  const bad =
    revision === "" ||
    revision === "@" ||
    revision.length > 255 ||
    /[\u0000-\u0020\u007f~^:?*[\\]/.test(revision) ||
    revision.includes("..") ||
    revision.includes("@{") ||
    revision.endsWith(".") ||
    components.some((c) => c === "" || c.startsWith(".") || c.endsWith(".lock"));
  if (bad) {
    throw new B158Error("E_HUB_SPEC", `${spec}: "${revision}" is not a revision (a branch, tag or commit sha)`, {
      hint: "Write hf://org/name@main, @v1.0, @refs/pr/1 or a 40-hex commit sha.",
      details: { revision },
    });
  }
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
