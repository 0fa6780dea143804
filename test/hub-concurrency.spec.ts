import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import type { HubEnv } from "../src/hub/env.js";
import { pull } from "../src/hub/pull.js";
import { parseHubSpec } from "../src/hub/spec.js";
import { expectB158Error } from "./support/expect-error.js";
import { MockHub, sha256 } from "./support/mock-hub.js";
import { CLI, REPO, runCli } from "./support/run-cli.js";

/**
 * Pulls are safe against each other, in one process and across processes, as Python's
 * huggingface_hub is: blobs are fetched under blobs/<hash>.lock, byte-identical files share one
 * download, revisions are checked before the cache is touched, and a stopped pull leaves only what
 * the next one resumes from.
 */
let root: string;
let hub: MockHub;
let files: Record<string, Uint8Array>;
let commit: string;
const SHARD = "model-00001-of-00002.safetensors";

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-pulls-"));
  const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "fixture"), dims: { layers: 1 }, shards: 2 });
  files = {};
  for (const name of fixture.files) files[name] = new Uint8Array(await readFile(join(fixture.dir, name)));
  // byte-identical files: one LFS blob (sha256) and one regular (git sha1) shared by two paths each
  files["copy-of-shard.safetensors"] = files[SHARD]!;
  files["added_tokens.json"] = files["special_tokens_map.json"]!;
  hub = new MockHub();
  await hub.start();
  commit = hub.addRepo("org/model", files);
});
afterAll(async () => {
  await hub.close();
  await rm(root, { recursive: true, force: true });
});
afterEach(() => hub.clearFaults());

let caches = 0;
const env = (cacheDir = join(root, `cache-${caches++}`)): HubEnv => ({ endpoint: hub.url, token: undefined, cacheDir, offline: false });
const fast = { attempts: 5, baseDelayMs: 5 };
const folder = (e: HubEnv) => join(e.cacheDir, "models--org--model");

/** Every file under the repo's cache folder, relative to it. */
async function cacheFiles(e: HubEnv): Promise<string[]> {
  return (await readdir(folder(e), { recursive: true })).map(String).sort();
}

/** The cache holds the snapshot, every link resolving to the right bytes, and no lock, partial or temp file. */
async function expectCleanCache(e: HubEnv): Promise<void> {
  const names = await cacheFiles(e);
  expect(names.filter((n) => /\.(lock|incomplete|tmp|stale)$/.test(n))).toEqual([]);
  const snapshot = join(folder(e), "snapshots", commit);
  for (const name of Object.keys(files)) {
    expect(Buffer.compare(await readFile(join(snapshot, name)), files[name]!), name).toBe(0);
  }
}

describe("pull: files with the same bytes", () => {
  it("share one blob and one download, every time (it used to fail on the second rename)", async () => {
    for (let run = 0; run < 3; run++) {
      const e = env();
      const result = await pull(parseHubSpec("org/model"), { env: e, retry: fast, concurrency: 4 });
      expect(result.files).toHaveLength(Object.keys(files).length);
      const snapshot = join(folder(e), "snapshots", commit);
      expect(await readlink(join(snapshot, "copy-of-shard.safetensors"))).toBe(await readlink(join(snapshot, SHARD)));
      expect(result.files.filter((f) => f.hash === sha256(files[SHARD]!)).map((f) => f.downloaded).sort()).toEqual([false, true]);
      await expectCleanCache(e);
    }
  });
});

describe("pull: revisions are checked before the cache is touched", () => {
  it.each(["./", ".", "..", "a/../b", "/main", "main/", "a//b", ".hidden", "x.lock", "a@{1}", "a:b", "tab\tname", "~1", "end."])("%j is E_HUB_SPEC and writes nothing", async (revision) => {
    const e = env();
    await expectB158Error(() => pull({ repo: "org/model", revision }, { env: e, retry: fast }), "E_HUB_SPEC");
    await expectB158Error(() => parseHubSpec(`org/model@${revision}`), "E_HUB_SPEC");
    await expect(readdir(e.cacheDir)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it('the CLI: pull "org/x@./" exits 2 with E_HUB_SPEC and leaves no refs/.<id>.tmp', async () => {
    const home = join(root, "cli-spec");
    const run = await runCli(["pull", "org/model@./"], { env: { HF_ENDPOINT: hub.url, HF_HOME: home } });
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toContain("E_HUB_SPEC");
    await expect(readdir(home)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("branch names with slashes still work", () => {
    expect(parseHubSpec("org/model@refs/pr/1").revision).toBe("refs/pr/1");
    expect(parseHubSpec("org/model@v1.0").revision).toBe("v1.0");
  });
});

describe("pull: locks between pulls", () => {
  it("two pulls in separate processes into one cache at once both succeed", async () => {
    const home = join(root, "cli-two");
    // slow downloads, so the two overlap on every blob
    hub.inject(/\/resolve\//, { kind: "slow", bytes: 16 * 1024, everyMs: 5 }, 1000);
    const options = { env: { HF_ENDPOINT: hub.url, HF_HOME: home } };
    const [a, b] = await Promise.all([runCli(["pull", "org/model", "--json"], options), runCli(["pull", "org/model", "--json"], options)]);
    for (const run of [a, b]) {
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).commit).toBe(commit);
    }
    const e = env(join(home, "hub"));
    await expectCleanCache(e);
    // each blob came down once: the other pull waited for it and found it there
    const downloads = [...JSON.parse(a.stdout).files, ...JSON.parse(b.stdout).files].filter((f: { downloaded: boolean }) => f.downloaded);
    expect(downloads).toHaveLength(new Set(Object.values(files).map((f) => (f.byteLength >= 1024 ? sha256(f) : f.byteLength))).size);
  });

  it("a pull waits while another process holds a blob's lock, then goes on", async () => {
    const e = env();
    const blob = join(folder(e), "blobs", sha256(files[SHARD]!));
    await mkdir(join(folder(e), "blobs"), { recursive: true });
    await writeFile(`${blob}.lock`, JSON.stringify({ pid: process.ppid, host: hostname(), token: "another pull" }));
    const waited: string[] = [];
    const pulling = pull(parseHubSpec("org/model"), { env: e, retry: fast, onWait: ({ file, owner }) => waited.push(`${file} ${owner?.pid}`) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(waited).toEqual([expect.stringMatching(new RegExp(`^(${SHARD}|copy-of-shard\\.safetensors) ${process.ppid}$`))]);
    await rm(`${blob}.lock`);
    await pulling;
    await expectCleanCache(e);
  });

  it("a lock left by a killed pull (its process gone) is taken over", async () => {
    const e = env();
    const dead = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ["-e", ""]);
      child.on("exit", () => resolve(child.pid!));
    });
    await mkdir(join(folder(e), "blobs"), { recursive: true });
    await writeFile(join(folder(e), "blobs", `${sha256(files[SHARD]!)}.lock`), JSON.stringify({ pid: dead, host: hostname(), token: "killed" }));
    await pull(parseHubSpec("org/model"), { env: e, retry: fast });
    await expectCleanCache(e);
  });
});

/** Runs `b158 args` against the mock Hub with slow downloads, sends SIGTERM once one is under way; its exit code and stderr. */
async function terminatedDuringDownload(args: readonly string[], home: string, bytesPer20Ms = 1024): Promise<{ code: number | null; stderr: string }> {
  const blobs = join(home, "hub", "models--org--model", "blobs");
  hub.inject(/\/resolve\//, { kind: "slow", bytes: bytesPer20Ms, everyMs: 20 }, 1000);
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, HF_ENDPOINT: hub.url, HF_HOME: home, NO_COLOR: "1" } });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  for (let i = 0; i < 500; i++) {
    const names = await readdir(blobs).catch(() => [] as string[]);
    if (names.some((n) => n.endsWith(".incomplete"))) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGTERM");
  const code = await exited;
  hub.clearFaults();
  return { code, stderr };
}

describe("SIGTERM during a download", () => {
  it("convert hf://... stops at once (exit 130), not after the download", async () => {
    const home = join(root, "cli-sigterm-convert");
    const out = await mkdtemp(join(root, "sigterm-out-"));
    const started = Date.now();
    // 5 KB/s: the whole download would take about a minute
    const { code, stderr } = await terminatedDuringDownload(["convert", "hf://org/model", "-o", join(out, "x.b158"), "--layout", "tq2_0"], home, 100);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain("E_INTERRUPTED");
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await readdir(out)).toEqual([]);
  });

  it("pull stops with exit 130 and E_INTERRUPTED, leaving no lock or temp file; the next pull resumes", async () => {
    const home = join(root, "cli-sigterm");
    const { code, stderr } = await terminatedDuringDownload(["pull", "org/model"], home);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain("E_INTERRUPTED");
    expect(stderr).toContain("SIGTERM");
    const left = (await readdir(join(home, "hub", "models--org--model"), { recursive: true })).map(String);
    expect(left.filter((n) => /\.(lock|tmp|stale)$/.test(n))).toEqual([]);
    const again = await runCli(["pull", "org/model", "--json"], { env: { HF_ENDPOINT: hub.url, HF_HOME: home } });
    expect(again.status, again.stderr).toBe(0);
    await expectCleanCache(env(join(home, "hub")));
  });
});
