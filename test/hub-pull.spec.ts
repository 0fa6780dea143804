import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { B158Error } from "../src/errors.js";
import { hubEnv, withToken } from "../src/hub/env.js";
import { retryingFetch } from "../src/hub/fetch.js";
import { parseHubSpec, withRevision } from "../src/hub/spec.js";
import { b158, spawnB158 } from "./support/cli.js";
import { MockHub, sha256 } from "./support/mock-hub.js";

/** `b158 pull` beside `hf download`: --local-dir, --revision, --token, --quiet, Ctrl-C and resume. */
const TOKEN = "hf_pull_parity_secret_42";
const BIG = "model-00002-of-00002.safetensors";
let root: string;
let hub: MockHub;
let files: Record<string, Uint8Array>;
let gatedCommit: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-pull-"));
  const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "fixture"), dims: { layers: 1 }, shards: 2 });
  files = {};
  for (const name of fixture.files) files[name] = new Uint8Array(await readFile(join(fixture.dir, name)));
  hub = new MockHub();
  await hub.start();
  hub.addRepo("org/model", { ...files, "extra.gguf": new Uint8Array(4096).fill(7) }, { refs: ["v1"] });
  gatedCommit = hub.addRepo("org/gated", files, { gatedToken: TOKEN });
});
afterAll(async () => {
  await hub.close();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  hub.log.length = 0;
  hub.clearFaults();
});

describe("pull flags (library parts)", () => {
  it("--revision is @revision; both, disagreeing, is E_USAGE; a bad one is E_HUB_SPEC", () => {
    expect(withRevision(parseHubSpec("org/m"), "org/m", "v1")).toEqual({ repo: "org/m", revision: "v1" });
    expect(withRevision(parseHubSpec("org/m@v1"), "org/m@v1", "v1")).toEqual({ repo: "org/m", revision: "v1" });
    expect(withRevision(parseHubSpec("org/m@v1"), "org/m@v1", undefined)).toEqual({ repo: "org/m", revision: "v1" });
    expect(() => withRevision(parseHubSpec("hf://org/m@v1"), "hf://org/m@v1", "v2")).toThrow(expect.objectContaining({ code: "E_USAGE" }));
    expect(() => withRevision(parseHubSpec("org/m"), "org/m", "a b")).toThrow(expect.objectContaining({ code: "E_HUB_SPEC" }));
  });

  it("--token wins over HF_TOKEN; a token that is not hf_... is E_HUB_AUTH without the token in the message", () => {
    const env = hubEnv({ HF_TOKEN: "hf_from_env", HF_HOME: "/nowhere" });
    expect(withToken(env, undefined).token).toBe("hf_from_env");
    expect(withToken(env, "hf_from_flag").token).toBe("hf_from_flag");
    const error = (() => {
      try {
        withToken(env, "ghp_secretvalue");
      } catch (e) {
        return e as B158Error;
      }
    })();
    expect(error?.code).toBe("E_HUB_AUTH");
    expect(JSON.stringify(error?.toJSON())).not.toContain("ghp_secretvalue");
    expect(error?.message).toContain("--token");
  });

  it("an aborted signal stops a request at once with E_INTERRUPTED, with no retry and no backoff", async () => {
    let calls = 0;
    const abort = new AbortController();
    const fetch = retryingFetch({
      baseDelayMs: 60_000,
      signal: abort.signal,
      fetch: async (_input, init) => {
        calls++;
        if (calls === 1) return new Response("busy", { status: 503 }); // a retry is due in 60 s...
        throw new Error(`unexpected call (signal aborted: ${init?.signal?.aborted})`);
      },
    });
    setTimeout(() => abort.abort(), 20); // ...and Ctrl-C comes first
    const started = Date.now();
    await expect(fetch("http://127.0.0.1:1/x")).rejects.toMatchObject({ code: "E_INTERRUPTED" });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(calls).toBe(1);
    await expect(fetch("http://127.0.0.1:1/y")).rejects.toMatchObject({ code: "E_INTERRUPTED" });
  });
});

describe("b158 pull (CLI)", () => {
  it("--local-dir copies the files out of the cache; --revision, --token (never printed); a re-run copies nothing", async () => {
    const home = join(root, "home-local");
    const dir = join(root, "local", "gated");
    const env = { HF_ENDPOINT: hub.url, HF_HOME: home };
    const run = await b158(["pull", "org/gated", "--revision", "main", "--token", TOKEN, "--local-dir", dir, "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.commit).toBe(gatedCommit);
    expect(result.localDir.dir).toBe(dir);
    expect((await readdir(dir)).sort()).toEqual(Object.keys(files).sort());
    for (const name of Object.keys(files)) {
      const local = join(dir, name);
      expect((await stat(local)).isFile()).toBe(true); // a plain file, not a link into the cache
      expect(sha256(new Uint8Array(await readFile(local)))).toBe(sha256(files[name]!));
    }
    expect(hub.log.filter((r) => r.url.includes("/resolve/")).every((r) => r.authorized)).toBe(true);

    // a damaged local copy is replaced; intact ones are left alone
    await writeFile(join(dir, "config.json"), "{}");
    const again = await b158(["pull", "org/gated", "--token", TOKEN, "--local-dir", dir], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`copied to ${dir}: 1 file, ${Object.keys(files).length - 1} already there`);
    expect(await readFile(join(dir, "config.json"))).toEqual(Buffer.from(files["config.json"]!));
    for (const output of [run, again]) expect(output.stdout + output.stderr).not.toContain(TOKEN);
  });

  it("--include picks files beyond the conversion set; --quiet prints only the folder", async () => {
    const dir = join(root, "local", "quiet");
    const run = await b158(["pull", "hf://org/model@v1", "--include", "*.gguf", "--local-dir", dir, "--quiet"], { HF_ENDPOINT: hub.url, HF_HOME: join(root, "home-quiet") });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${dir}\n`);
    expect(run.stderr).toBe("");
    expect(await readdir(dir)).toEqual(["extra.gguf"]);
  });

  it("a wrong token is E_HUB_AUTH (exit 6) under --json too, and is never printed", async () => {
    const env = { HF_ENDPOINT: hub.url, HF_HOME: join(root, "home-refuse") };
    const wrong = await b158(["pull", "org/gated", "--token", "hf_wrong_secret_value", "--json"], env);
    expect(wrong.code).toBe(6);
    expect(JSON.parse(wrong.stdout).error.code).toBe("E_HUB_AUTH");
    expect(wrong.stdout + wrong.stderr).not.toContain("hf_wrong_secret_value");
  });

  it("Ctrl-C says what was kept and that the next run resumes; the next run says it resumed", async () => {
    const home = join(root, "home-sigint");
    const env = { HF_ENDPOINT: hub.url, HF_HOME: home };
    hub.inject(new RegExp(`${BIG}$`), { kind: "stall", afterBytes: 3000 }, 1);
    const child = spawnB158(["pull", "org/model", "--concurrency", "1"], env);
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const blobs = join(home, "hub", "models--org--model", "blobs");
    // interrupt once the stalled download has its first bytes on disk, whatever the machine's speed
    const poll = setInterval(() => {
      void readdir(blobs)
        .catch(() => [] as string[])
        .then(async (names) => {
          const partial = names.find((n) => n.endsWith(".incomplete"));
          if (partial !== undefined && (await stat(join(blobs, partial)).catch(() => undefined))?.size === 3000) {
            clearInterval(poll);
            child.kill("SIGINT");
          }
        });
    }, 20);
    const guard = setTimeout(() => child.kill("SIGKILL"), 45_000); // a pull that ignores Ctrl-C must not outlive the test
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    clearInterval(poll);
    clearTimeout(guard);
    const message = stderr.replace(/\s+/g, " "); // the error printer wraps lines
    expect(code, stderr).toBe(130);
    expect(stderr).toContain("E_INTERRUPTED");
    expect(message).toMatch(/kept in \S+models--org--model: 3 complete files \([\d.]+ KiB\)/);
    expect(message).toMatch(new RegExp(`partial: ${BIG.replace(/\./g, "\\.")} \\(2\\.93 KiB of [\\d.]+ KiB\\)`));
    expect(message).toContain("Run the same command again to resume");
    expect(await readdir(blobs)).toContain(`${sha256(files[BIG]!)}.incomplete`);

    const again = await b158(["pull", "org/model"], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`resumed ${BIG.replace(/\./g, "\\.")} from 2\\.93 KiB of [\\d.]+ KiB \\(an earlier run was interrupted\\)`));
  });

  it("--json: the re-run lists what it resumed, continued with a Range request and verified", async () => {
    const home = join(root, "home-resume-json");
    const env = { HF_ENDPOINT: hub.url, HF_HOME: home };
    // an earlier run that died: the first 1000 bytes of the big shard as blobs/<sha256>.incomplete
    const blobs = join(home, "hub", "models--org--model", "blobs");
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(files[BIG]!)}.incomplete`), files[BIG]!.subarray(0, 1000));
    const run = await b158(["pull", "org/model", "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.resumed).toEqual([{ path: BIG, fromBytes: 1000, size: files[BIG]!.byteLength }]);
    expect(hub.log.some((r) => r.url.endsWith(BIG) && /^bytes=1000-/.test(r.range ?? ""))).toBe(true);
    expect(await readFile(join(result.snapshotDir, BIG))).toEqual(Buffer.from(files[BIG]!));
  });
});
