import { downloadFile } from "@huggingface/hub";
import type { HubEnv } from "./env.js";
import { hubCall } from "./errors.js";

/**
 * The license of the model a file was converted from, read where the Hub keeps it: the YAML front
 * matter of the source repo's README.md (its model card), at the commit the file records.
 */

/** A license id as model cards write them (mit, apache-2.0, llama3.1, other, ...): nothing that could break the card's YAML. */
export const LICENSE_ID = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Top-level `key: value` scalars of a model card's front matter (lists and nested maps are skipped). */
export function cardMetadata(card: string): Map<string, string> {
  const metadata = new Map<string, string>();
  const match = /^\uFEFF?---\r?\n([\s\S]*?)\r?\n---\s*(\r?\n|$)/.exec(card);
  if (match === null) return metadata;
  for (const line of match[1]!.split(/\r?\n/)) {
    const entry = /^([A-Za-z_][A-Za-z0-9_-]*):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (entry === null || entry[2] === "") continue;
    const raw = entry[2]!.replace(/[ \t]+#.*$/, "");
    const quoted = /^"(.*)"$|^'(.*)'$/.exec(raw);
    metadata.set(entry[1]!, quoted ? (quoted[1] ?? quoted[2]!) : raw);
  }
  return metadata;
}

export interface SourceLicense {
  readonly license: string | null;
  /** Why there is none (no card, no license key, a value that is not a license id, the card could not be read). */
  readonly reason: string | null;
}

export async function sourceLicense(repo: string, revision: string, env: HubEnv, fetch: typeof globalThis.fetch): Promise<SourceLicense> {
  if (env.offline) return { license: null, reason: `HF_HUB_OFFLINE is set, so ${repo}'s model card was not read` };
  try {
    const card = await hubCall({ repo, revision }, "README.md", async () => {
      const blob = await downloadFile({ repo, path: "README.md", revision, hubUrl: env.endpoint, fetch, xet: false, ...(env.token === undefined ? {} : { accessToken: env.token }) });
      return blob === null ? null : blob.size > 1 << 20 ? "" : blob.text();
    });
    if (card === null) return { license: null, reason: `${repo} has no model card (README.md)` };
    const license = cardMetadata(card).get("license");
    if (license === undefined) return { license: null, reason: `${repo}'s model card names no license` };
    if (!LICENSE_ID.test(license)) return { license: null, reason: `${repo}'s model card license "${license.slice(0, 40)}" is not a license id` };
    return { license, reason: null };
  } catch (error) {
    return { license: null, reason: `${repo}'s model card could not be read (${(error as Error).message})` };
  }
}
