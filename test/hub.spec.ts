import { execFile } from "node:child_process";
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { B158Error } from "../src/errors.js";
import { hubEnv, type HubEnv } from "../src/hub/env.js";
import { pull } from "../src/hub/pull.js";
import { parseHubSpec } from "../src/hub/spec.js";
import { getValidator } from "../src/schemas.js";
import { gitSha1, MockHub, sha256 } from "./support/mock-hub.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const TOKEN = "hf_test_secret_token_123";
let root: string;
let hub: MockHub;
let files: Record<string, Uint8Array>;
let commit: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-hub-"));
  const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "fixture"), dims: { layers: 1 }, shards: 2 });
  files = {};
  for (const name of fixture.files) files[name] = new Uint8Array(await readFile(join(fixture.dir, name)));
  files["README.md"] = new TextEncoder().encode("# not needed for conversion\n");
  hub = new MockHub();
  await hub.start();
  commit = hub.addRepo("org/model", files, { refs: ["v1"] });
  hub.addRepo("org/gated", files, { gatedToken: TOKEN });
});
afterAll(async () => {
  await hub.close();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => {
  hub.log.length = 0;
  hub.clearFaults();
});

let cacheCount = 0;
function env(overrides: Partial<HubEnv> = {}): HubEnv {
  return { endpoint: hub.url, token: undefined, cacheDir: join(root, `cache-${cacheCount++}`), offline: false, ...overrides };
}
const fast = { attempts: 5, baseDelayMs: 5 };

describe("b158 pull (library)", () => {
  it("resolves the revision first, writes refs/, and lays the standard HF cache out", async () => {
    const e = env();
    const result = await pull(parseHubSpec("hf://org/model@main"), { env: e, retry: fast });
    expect(result.commit).toBe(commit);
    const folder = join(e.cacheDir, "models--org--model");
    expect(await readFile(join(folder, "refs", "main"), "utf8")).toBe(commit);
    const snapshot = join(folder, "snapshots", commit);
    expect(result.snapshotDir).toBe(snapshot);
    // only what conversion needs: no README.md
    expect((await readdir(snapshot)).sort()).toEqual(Object.keys(files).filter((f) => f !== "README.md").sort());
    for (const name of await readdir(snapshot)) {
      const link = join(snapshot, name);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      const target = await readlink(link);
      const blobName = files[name]!.byteLength >= 1024 ? sha256(files[name]!) : gitSha1(files[name]!);
      expect(target).toBe(join("..", "..", "blobs", blobName)); // relative, as Python writes them
      expect(Buffer.compare(await readFile(link), files[name]!)).toBe(0);
    }
    expect((await readdir(join(folder, "blobs"))).some((b) => b.endsWith(".incomplete"))).toBe(false);
  });

  it("a warm cache downloads nothing", async () => {
    const e = env();
    await pull(parseHubSpec("org/model"), { env: e, retry: fast });
    hub.log.length = 0;
    const again = await pull(parseHubSpec("org/model"), { env: e, retry: fast });
    expect(again.files.every((f) => !f.downloaded)).toBe(true);
    expect(hub.log.filter((r) => r.url.includes("/resolve/"))).toEqual([]);
  });

  it("HF_HUB_OFFLINE: the cache only, no request at all; a cold cache is E_HUB_OFFLINE", async () => {
    const e = env();
    await pull(parseHubSpec("org/model@v1"), { env: e, retry: fast });
    hub.log.length = 0;
    const offline = await pull(parseHubSpec("org/model@v1"), { env: { ...e, offline: true } });
    expect(offline).toMatchObject({ commit, offline: true });
    expect(hub.log).toEqual([]);
    await expect(pull(parseHubSpec("org/other"), { env: { ...e, offline: true } })).rejects.toMatchObject({ code: "E_HUB_OFFLINE" });
  });

  it("retries 500 and 429 answers with backoff", async () => {
    hub.inject(/\/revision\//, { kind: "status", status: 500 }, 2);
    hub.inject(/model-00001-of-00002\.safetensors$/, { kind: "status", status: 429, retryAfter: 0 }, 2);
    const result = await pull(parseHubSpec("org/model"), { env: env(), retry: fast });
    expect(result.commit).toBe(commit);
    expect(hub.log.filter((r) => r.url.includes("/revision/")).length).toBe(3);
  });

  it("resumes a dropped connection with a Range request and verifies the whole file", async () => {
    const big = "model-00002-of-00002.safetensors";
    hub.inject(new RegExp(`${big}$`), { kind: "drop", afterBytes: 3000 }, 1);
    const e = env();
    const result = await pull(parseHubSpec("org/model"), { env: e, retry: fast });
    const ranges = hub.log.filter((r) => r.url.endsWith(big) && r.range !== undefined && r.range !== "bytes=0-0").map((r) => r.range);
    expect(ranges.some((r) => /^bytes=[1-9]\d*-/.test(r!))).toBe(true);
    expect(Buffer.compare(await readFile(join(result.snapshotDir, big)), files[big]!)).toBe(0);
  });

  it("a blob with the wrong hash is never left where the cache would trust it (E_HUB_HASH)", async () => {
    const big = "model-00001-of-00002.safetensors";
    hub.inject(new RegExp(`${big}$`), { kind: "corrupt" }, 10);
    const e = env();
    const error = await pull(parseHubSpec("org/model"), { env: e, retry: fast, concurrency: 1 }).catch((x: unknown) => x);
    expect(error).toBeInstanceOf(B158Error);
    expect((error as B158Error).code).toBe("E_HUB_HASH");
    const blobs = await readdir(join(e.cacheDir, "models--org--model", "blobs"));
    expect(blobs).not.toContain(sha256(files[big]!));
    expect(blobs.some((b) => b.startsWith(sha256(files[big]!)))).toBe(false);
  });

  it("gated repos: 401 without a token is E_HUB_AUTH; HF_TOKEN gets in", async () => {
    await expect(pull(parseHubSpec("org/gated"), { env: env(), retry: fast })).rejects.toMatchObject({ code: "E_HUB_AUTH" });
    hub.log.length = 0;
    const ok = await pull(parseHubSpec("org/gated"), { env: env({ token: TOKEN }), retry: fast });
    expect(ok.files.length).toBeGreaterThan(0);
    expect(hub.log.filter((r) => r.url.includes("/resolve/")).every((r) => r.authorized)).toBe(true);
  });

  it("a missing repo or revision is E_HUB_NOT_FOUND; a bad spec is E_HUB_SPEC", async () => {
    await expect(pull(parseHubSpec("org/nope"), { env: env(), retry: fast })).rejects.toMatchObject({ code: "E_HUB_NOT_FOUND" });
    await expect(pull(parseHubSpec("org/model@no-such-branch"), { env: env(), retry: fast })).rejects.toMatchObject({ code: "E_HUB_NOT_FOUND" });
    expect(() => parseHubSpec("hf://org/../etc")).toThrow(B158Error);
    expect(() => parseHubSpec("hf://justone")).toThrow(B158Error);
  });

  it("reads HF_ENDPOINT, HF_TOKEN, the token file and the cache variables like Python does", async () => {
    const e = hubEnv({ HF_ENDPOINT: "http://mirror.local/", HF_HOME: "/x/hf", HF_TOKEN: "hf_a", HF_HUB_OFFLINE: "1" });
    expect(e).toEqual({ endpoint: "http://mirror.local", token: "hf_a", cacheDir: "/x/hf/hub", offline: true });
    expect(hubEnv({ HF_HUB_CACHE: "/c", XDG_CACHE_HOME: "/xdg" }).cacheDir).toBe("/c");
    expect(hubEnv({ XDG_CACHE_HOME: "/xdg" }).cacheDir).toBe("/xdg/huggingface/hub");
  });
});

function b158(args: string[], extraEnv: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...extraEnv };
    delete childEnv.HF_TOKEN;
    if (extraEnv.HF_TOKEN) childEnv.HF_TOKEN = extraEnv.HF_TOKEN;
    execFile(process.execPath, [join(repoRoot, "bin", "run.js"), ...args], { cwd: repoRoot, env: childEnv, maxBuffer: 1 << 26 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }),
    );
  });
}

describe("Hub sources end to end (CLI)", () => {
  it("converts hf://org/model with a cold cache, then again offline with the server gone", async () => {
    const home = join(root, "cli-home");
    const offlineHub = new MockHub();
    await offlineHub.start();
    offlineHub.addRepo("org/model", files);
    const first = await b158(["convert", "hf://org/model", "-o", join(root, "hub.b158"), "--layout", "tq2_0", "--json"], { HF_ENDPOINT: offlineHub.url, HF_HOME: home });
    expect(first.code, first.stderr).toBe(0);
    await offlineHub.close();
    const second = await b158(["convert", "hf://org/model", "-o", join(root, "hub-offline.b158"), "--layout", "tq2_0", "--json"], { HF_ENDPOINT: offlineHub.url, HF_HOME: home, HF_HUB_OFFLINE: "1" });
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).sha256).toBe(JSON.parse(first.stdout).sha256);
    const inspect = await b158(["inspect", join(root, "hub.b158"), "--json"], {});
    expect(JSON.parse(inspect.stdout).provenance.source).toEqual({ kind: "hub", repo: "org/model", revision: "main", commit });
  });

  it("pull prints the snapshot; a gated repo without a token exits 6 with a hint, and the token is never printed", async () => {
    const home = join(root, "cli-gated");
    const denied = await b158(["pull", "org/gated"], { HF_ENDPOINT: hub.url, HF_HOME: home });
    expect(denied.code).toBe(6);
    expect(denied.stderr).toContain("E_HUB_AUTH");
    expect(denied.stderr).toContain("HF_TOKEN");
    const ok = await b158(["pull", "org/gated", "--json"], { HF_ENDPOINT: hub.url, HF_HOME: home, HF_TOKEN: TOKEN });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/^downloading org\/gated: [\d.]+ (B|KiB|MiB)$/m);
    expect(ok.stderr).toMatch(/^config\.json {2}[\d.]+ (B|KiB)$/m);
    expect(JSON.parse(ok.stdout).commit).toBe(commit);
    expect(ok.stdout + ok.stderr + denied.stdout + denied.stderr).not.toContain(TOKEN);
  });
});

describe("b158 push", () => {
  let packed: string;
  const WRITE = "hf_write_token";
  beforeAll(async () => {
    // a .b158 converted from the mock Hub, so its provenance names the source repo
    packed = join(root, "push-model-tq2_0.b158");
    const run = await b158(["convert", "hf://org/model", "-o", packed, "--layout", "tq2_0"], { HF_ENDPOINT: hub.url, HF_HOME: join(root, "push-home") });
    expect(run.code, run.stderr).toBe(0);
  });

  it("creates the repo, uploads the file as LFS with a model card and a manifest; a re-push makes no commit", async () => {
    const { push } = await import("../src/hub/push.js");
    const e = env({ token: WRITE });
    const first = await push({ files: [packed], repo: "tester/packed", env: e, retry: fast });
    expect(first).toMatchObject({ createdRepo: true, unchanged: false, dryRun: false });
    expect(first.commit?.oid).toMatch(/^[0-9a-f]{40}$/);
    const repo = hub.repo("tester/packed")!;
    expect(repo.received).toHaveLength(1);
    const received = repo.received[0]!;
    const bytes = new Uint8Array(await readFile(packed));
    expect(received.lfsFiles).toEqual([{ path: "push-model-tq2_0.b158", oid: sha256(bytes), size: bytes.byteLength }]);
    expect([...received.regularFiles].sort()).toEqual(["README.md", "b158-manifest.json"]);
    const files = repo.files("main");
    expect(Buffer.compare(Buffer.from(files.get("push-model-tq2_0.b158")!), Buffer.from(bytes))).toBe(0);
    const card = new TextDecoder().decode(files.get("README.md"));
    expect(card).toMatch(/^---\nbase_model: org\/model\n/);
    for (const tag of ["bitnet", "ternary", "b158", "tq2_0"]) expect(card).toContain(`  - ${tag}\n`);
    expect(card).toMatch(/\| `push-model-tq2_0\.b158` \| \.b158 \| tq2_0 \| [\d.]+ (KiB|MiB) \| 2\.063 \|/);
    expect(card).toContain("## How to load");
    const manifest = JSON.parse(new TextDecoder().decode(files.get("b158-manifest.json")));
    expect(getValidator("manifest")(manifest)).toBe(true);
    expect(manifest.files[0]).toMatchObject({ path: "push-model-tq2_0.b158", sha256: sha256(bytes), layout: "tq2_0", source: { kind: "hub", repo: "org/model" } });

    const again = await push({ files: [packed], repo: "tester/packed", env: e, retry: fast });
    expect(again).toMatchObject({ unchanged: true, commit: null, createdRepo: false });
    expect(repo.received).toHaveLength(1);
  });

  it("--create-pr opens a pull request; --dry-run writes nothing (it reads only the source's card); no token is E_HUB_AUTH", async () => {
    const { push } = await import("../src/hub/push.js");
    const e = env({ token: WRITE });
    await push({ files: [packed], repo: "tester/pr", env: e, retry: fast });
    const pr = await push({ files: [packed], repo: "tester/pr", env: e, retry: fast, createPr: true });
    expect(pr.pullRequestUrl).toMatch(/discussions\/1$/);
    expect(hub.repo("tester/pr")!.received.at(-1)).toMatchObject({ createPr: true });
    hub.log.length = 0;
    const dry = await push({ files: [packed], repo: "tester/dry", env: e, dryRun: true });
    expect(dry.files.map((f) => f.path)).toEqual(["push-model-tq2_0.b158", "README.md", "b158-manifest.json"]);
    expect(hub.log.map((r) => `${r.method} ${r.url}`)).toEqual([expect.stringMatching(/^GET \/org\/model\/resolve\/[0-9a-f]{40}\/README\.md$/), expect.stringMatching(/^GET \/org\/model\/resolve\/[0-9a-f]{40}\/README\.md$/)]);
    hub.log.length = 0;
    await push({ files: [packed], repo: "tester/dry", env: e, dryRun: true, license: "mit" });
    expect(hub.log).toEqual([]); // with --license, no request at all
    await expect(push({ files: [packed], repo: "tester/x", env: env() })).rejects.toMatchObject({ code: "E_HUB_AUTH" });
  });

  it("the CLI prints the commit id and URL as JSON, and never the token", async () => {
    const run = await b158(["push", packed, "tester/cli", "--json"], { HF_ENDPOINT: hub.url, HF_HOME: join(root, "push-cli"), HF_TOKEN: WRITE });
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.commit.oid).toBe(hub.repo("tester/cli")!.refs.get("main"));
    expect(result.commit.url).toContain("/tester/cli/commit/");
    expect(run.stdout + run.stderr).not.toContain(WRITE);
    // progress on stderr, a line per uploaded file, while stdout is only the JSON document
    expect(run.stderr).toMatch(/^uploading to tester\/cli: [\d.]+ (KiB|MiB)$/m);
    expect(run.stderr).toMatch(/^push-model-tq2_0\.b158 {2}[\d.]+ (KiB|MiB)$/m);
  });
});

describe("inspect hf://", () => {
  it("reads only safetensors headers with Range requests, never the weights", async () => {
    hub.log.length = 0;
    const home = join(root, "inspect-home");
    const run = await b158(["inspect", "hf://org/model", "--json"], { HF_ENDPOINT: hub.url, HF_HOME: home });
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.family.id).toBe("bitnet-packed");
    expect(report.source.origin).toEqual({ kind: "hub", repo: "org/model", revision: "main", commit });
    expect(report.files.weights).toHaveLength(2);
    const weightRequests = hub.log.filter((r) => r.url.includes(".safetensors") && !r.url.includes("index.json"));
    expect(weightRequests.length).toBeGreaterThan(0);
    for (const request of weightRequests) {
      expect(request.range, request.url).toMatch(/^bytes=\d+-\d+$/);
      const [, start, end] = /^bytes=(\d+)-(\d+)$/.exec(request.range!)!;
      const name = decodeURIComponent(request.url.split("/").pop()!);
      const headerEnd = 8 + Number(Buffer.from(files[name]!.subarray(0, 8)).readBigUInt64LE(0));
      expect(Number(end), `${name} ${start}-${end}`).toBeLessThan(headerEnd);
    }
    // nothing downloaded into the cache beyond refs/
    const cached = await readdir(join(home, "hub", "models--org--model")).catch(() => [] as string[]);
    expect(cached).toEqual(["refs"]);
  });
});
