import { HubApiError } from "@huggingface/hub";
import { B158Error } from "../errors.js";
import type { HubSpec } from "./spec.js";

/** Maps the Hub's failures to our codes: 401/403 auth, 404 not found, the rest unavailable. */
export async function hubCall<T>(spec: HubSpec, file: string | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof B158Error) throw error;
    const where = `${spec.repo}@${spec.revision}${file ? `/${file}` : ""}`;
    if (error instanceof HubApiError) {
      if (error.statusCode === 401 || error.statusCode === 403) {
        throw new B158Error("E_HUB_AUTH", `${where}: the Hub refused access (HTTP ${error.statusCode})`, {
          hint: "The repo is gated or private: accept its terms on the Hub, then set HF_TOKEN (or log in so $HF_HOME/token exists).",
          details: { repo: spec.repo, status: error.statusCode },
        });
      }
      if (error.statusCode === 404) {
        const kind = /revision/i.test(error.message) ? "revision" : file === undefined ? "repo (or revision)" : "file";
        throw new B158Error("E_HUB_NOT_FOUND", `${where}: no such ${kind} on ${new URL(error.url ?? "http://hub").origin} (HTTP 404)`, {
          hint: "Check the spelling of org/name and the revision; private repos also answer 404 without a token.",
          details: { repo: spec.repo, status: 404 },
        });
      }
      throw new B158Error("E_HUB_UNAVAILABLE", `${where}: the Hub answered HTTP ${error.statusCode} (${error.message})`, { details: { repo: spec.repo, status: error.statusCode }, cause: error });
    }
    throw new B158Error("E_HUB_UNAVAILABLE", `${where}: cannot reach the Hub (${(error as Error).message})`, {
      hint: "Check the network or HF_ENDPOINT; set HF_HUB_OFFLINE=1 to use the cache only.",
      cause: error,
    });
  }
}
