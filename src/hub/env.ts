import { readFileSync } from "node:fs";
import { B158Error } from "../errors.js";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The Hugging Face environment, read the way Python's huggingface_hub reads it, so both tools
 * share one cache and one login. Read on every call: tests and users may change it between calls.
 */
export interface HubEnv {
  /** HF_ENDPOINT without a trailing slash, or the public Hub. */
  readonly endpoint: string;
  /** HF_TOKEN, else the token file under HF_HOME; never printed or stored by b158. */
  readonly token: string | undefined;
  /** HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. */
  readonly cacheDir: string;
  /** HF_HUB_OFFLINE=1: use the cache only, make no request at all. */
  readonly offline: boolean;
}

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (token === undefined) {
    try {
      token = readFileSync(env.HF_TOKEN_PATH ?? join(home, "token"), "utf8").trim() || undefined;
    } catch {
      token = undefined;
    }
  }
  const offline = ["1", "ON", "YES", "TRUE"].includes((env.HF_HUB_OFFLINE ?? "").toUpperCase());
  return {
    endpoint: (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    token,
    cacheDir: env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(home, "hub"),
    offline,
  };
}

/**
 * The environment with the token a command was given (`--token`, which wins over HF_TOKEN and the
 * token file). A token that is not `hf_...` fails here, before any request (the Hub library would
 * throw a TypeError that reads like a network failure); the message never contains the token.
 */
export function withToken(env: HubEnv, flagToken: string | undefined): HubEnv {
  const token = flagToken ?? env.token;
  if (token !== undefined && !token.startsWith("hf_")) {
    throw new B158Error("E_HUB_AUTH", `the token ${flagToken !== undefined ? "given with --token" : "from HF_TOKEN (or the token file)"} does not look like a Hugging Face token: it should start with hf_`, {
      hint: "Copy the token again from huggingface.co/settings/tokens.",
    });
  }
  return { ...env, token };
}
