import { execFileSync, spawn } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { CLI, REPO, runCli } from "./support/run-cli.js";

/**
 * Outputs as a user meets them: the output path is checked before any work (a directory, a
 * missing folder, a device or a FIFO is a coded usage error); SIGTERM stops convert and export like
 * Ctrl-C, leaving nothing; a run killed with SIGKILL leaves a temp file that names its process,
 * and the next run for the same output removes it and says so.
 */
let root: string;
let example: string;
let big: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-outputs-"));
  example = join(REPO, "fixtures", "example");
  // large enough that a conversion is still under way when the test signals it
  big = join(root, "big");
  await generateCheckpoint({ family: "bitnet-1bitllm", dir: big, dims: { layers: 8, hidden: 512, intermediate: 1536, heads: 8, kvHeads: 8 } });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("the output path is checked before any work", () => {
  it.each([
    ["an existing directory", async (dir: string) => dir, [], "is a directory"],
    ["a missing folder", async (dir: string) => join(dir, "no", "such", "out.b158"), [], "does not exist"],
    ["a FIFO, with --force", async (dir: string) => (execFileSync("mkfifo", [join(dir, "fifo")]), join(dir, "fifo")), ["--force"], "is a FIFO"],
  ] as const)("%s: E_OUTPUT_PATH (exit 2), even before the source is looked at", async (_, make, flags, words) => {
    const dir = await mkdtemp(join(root, "path-"));
    const output = await make(dir);
    const before = await readdir(dir);
    // a source that does not exist: the output is refused first, so no work is done for nothing
    // and --format gguf takes the same path (once is enough: each run is a cold start)
    const formats = words === "is a directory" ? [[], ["--format", "gguf"]] : [[]];
    for (const args of formats.map((format) => ["convert", join(root, "no-such-source"), "-o", output, "--layout", "tq2_0", ...format, ...flags])) {
      const run = await runCli(args);
      expect(run.status, run.stderr).toBe(2);
      // oclif wraps long messages: compare with the line breaks taken out
      const said = run.stderr.replace(/\s+/g, " ");
      expect(said).toContain("E_OUTPUT_PATH");
      expect(said).toContain(words);
      expect(said).not.toContain(".partial");
    }
    expect(await readdir(dir)).toEqual(before);
    if (words === "is a FIFO") expect((await lstat(output)).isFIFO()).toBe(true);
  });

  it("export checks its output the same way (a FIFO here)", async () => {
    const b158 = join(root, "for-export.b158");
    expect((await runCli(["convert", example, "-o", b158, "--layout", "tq2_0"])).status).toBe(0);
    const dir = await mkdtemp(join(root, "export-"));
    execFileSync("mkfifo", [join(dir, "fifo")]);
    // the other kinds of path are the same check (src/io/atomic-file.spec.ts)
    for (const [output, words] of [[join(dir, "fifo"), "is a FIFO"]] as const) {
      const run = await runCli(["export", b158, "-o", output, "--force"]);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr.replace(/\s+/g, " ")).toContain("E_OUTPUT_PATH");
      expect(run.stderr.replace(/\s+/g, " ")).toContain(words);
    }
  });
});

/** Starts `b158 args`, sends `signal` once a temp file appears in `dir`, and returns its exit code and stderr. */
async function interrupt(args: readonly string[], dir: string, signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<{ code: number | null; killedBy: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: "1", ...env } });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; killedBy: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, killedBy) => resolve({ code, killedBy })));
  let sent = false;
  const poll = setInterval(() => {
    void readdir(dir).then((names) => {
      if (!sent && names.some((n) => n.endsWith(".partial"))) {
        sent = true;
        child.kill(signal);
      }
    });
  }, 5);
  const result = await exited;
  clearInterval(poll);
  expect(sent, `no temp file appeared before the command ended: ${stderr}`).toBe(true);
  return { ...result, stderr };
}

describe("SIGTERM is handled like Ctrl-C", () => {
  it.each([
    ["convert", (out: string) => ["convert", big, "-o", join(out, "x.b158"), "--layout", "tq2_0", "--threads", "1"]],
    ["convert --format gguf", (out: string) => ["convert", big, "-o", join(out, "x.gguf"), "--layout", "tq2_0", "--threads", "1"]],
  ] as const)("%s: exit 130, E_INTERRUPTED naming SIGTERM, nothing left", async (_, args) => {
    const out = await mkdtemp(join(root, "term-"));
    const run = await interrupt(args(out), out, "SIGTERM");
    expect(run.code, run.stderr).toBe(130);
    expect(run.stderr).toContain("E_INTERRUPTED");
    expect(run.stderr).toContain("SIGTERM");
    expect(await readdir(out)).toEqual([]);
  });

  it("convert writing with O_DIRECT (B158_DIRECT_IO=1): exit 130, nothing left", async () => {
    const out = await mkdtemp(join(root, "term-direct-"));
    const run = await interrupt(["convert", big, "-o", join(out, "x.b158"), "--layout", "tq2_0", "--threads", "1"], out, "SIGTERM", { B158_DIRECT_IO: "1" });
    expect(run.code, run.stderr).toBe(130);
    expect(run.stderr).toContain("E_INTERRUPTED");
    expect(await readdir(out)).toEqual([]);
  });

  it("export: exit 130, nothing left", async () => {
    const source = join(root, "big.b158");
    expect((await runCli(["convert", big, "-o", source, "--layout", "tq2_0"], { timeoutMs: 120_000 })).status).toBe(0);
    const out = await mkdtemp(join(root, "term-export-"));
    // f32 weights: the largest export, so the signal arrives while it writes
    const run = await interrupt(["export", source, "-o", join(out, "x.gguf"), "--weights", "f32"], out, "SIGTERM");
    expect(run.code, run.stderr).toBe(130);
    expect(run.stderr).toContain("E_INTERRUPTED");
    expect(await readdir(out)).toEqual([]);
  });
});

describe("SIGKILL cannot be handled: the next run cleans up", () => {
  it("the temp file names its process; the next convert to the same output removes it and says so", async () => {
    const out = await mkdtemp(join(root, "kill-"));
    const output = join(out, "x.b158");
    const killed = await interrupt(["convert", big, "-o", output, "--layout", "tq2_0", "--threads", "1"], out, "SIGKILL");
    expect(killed.killedBy).toBe("SIGKILL");
    const [stale] = await readdir(out);
    expect(stale).toMatch(/^\.x\.b158\.b158-[0-9a-f]{8}-\d+-[0-9a-f]{12}\.partial$/);
    // a temp file of another target in the same folder is not this run's business
    await writeFile(join(out, ".y.b158.b158-00000000-1-0123456789ab.partial"), "");
    const next = await runCli(["convert", example, "-o", output, "--layout", "tq2_0", "--json"]);
    expect(next.status, next.stderr).toBe(0);
    const warnings: { code: string; message: string; file?: string }[] = JSON.parse(next.stdout).warnings;
    expect(warnings).toContainEqual(expect.objectContaining({ code: "W_STALE_PARTIAL", file: output, message: expect.stringMatching(new RegExp(`^${join(out, stale!).replace(/[.]/g, "\\.")}: removed`)) }));
    expect((await readdir(out)).sort()).toEqual([".y.b158.b158-00000000-1-0123456789ab.partial", "x.b158"]);
  });

  it("a temp file of a run on another host is left, and the user is told where it is", async () => {
    const out = await mkdir(join(root, "other-host"), { recursive: true }).then(() => join(root, "other-host"));
    const foreign = join(out, ".x.b158.b158-00000000-123-0123456789ab.partial");
    await writeFile(foreign, "x");
    const run = await runCli(["convert", example, "-o", join(out, "x.b158"), "--layout", "tq2_0", "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const warnings: { code: string; message: string }[] = JSON.parse(run.stdout).warnings;
    expect(warnings).toContainEqual(expect.objectContaining({ code: "W_STALE_PARTIAL", message: expect.stringContaining(`${foreign}: a temp file of x.b158 from a run on another host`) }));
    // the human report names the file too (wrapped at 80 columns)
    const human = await runCli(["convert", example, "-o", join(out, "x.b158"), "--layout", "tq2_0", "--force"]);
    expect(human.stdout.replace(/\s+/g, " ")).toContain(`W_STALE_PARTIAL ${foreign}: a temp file of x.b158 from a run on another host`);
    expect(await readdir(out)).toContain(".x.b158.b158-00000000-123-0123456789ab.partial");
  });
});
