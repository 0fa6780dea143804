import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { getValidator } from "../src/schemas.js";

/** The 2026 families end to end, as a user runs the built CLI (npm test builds dist/ first). */
const repo = fileURLToPath(new URL("..", import.meta.url));

function b158(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-cli-families-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("a BitNet-embedding checkpoint", () => {
  it("inspect names family 7; convert writes the .b158 and bitnet.cpp's GGUF, refuses a mainline one; eval compares pooled embeddings", async () => {
    const dir = join(root, "embedding");
    await generateCheckpoint({ family: "qwen3-bitnet-embedding", dir, dims: { layers: 1 } });
    const inspect = await b158(["inspect", dir, "--json"]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout).family).toMatchObject({ id: "bitnet-embedding", number: 7 });

    const out = join(root, "out");
    await mkdir(out);
    const refused = await b158(["convert", dir, "-o", join(out, "model.gguf"), "--layout", "tq2_0"]);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toContain("E_GGUF_EXPORT");
    expect(refused.stderr).toContain("_norm_in");
    expect(await readdir(out)).toEqual([]);

    const gguf = await b158(["convert", dir, "-o", join(root, "model.gguf"), "--layout", "i2_s", "--json"]);
    expect(gguf.code, gguf.stderr).toBe(0);
    const b158file = join(root, "model.b158");
    expect((await b158(["convert", dir, "-o", b158file, "--layout", "i2_s"])).code).toBe(0);
    const evaluation = await b158(["eval", dir, b158file, "--gguf", join(root, "model.gguf"), "--tokens", "2,60,70,80,90,100", "--json"]);
    expect(evaluation.code, evaluation.stderr).toBe(0);
    const report = JSON.parse(evaluation.stdout);
    expect(getValidator("eval")(report)).toBe(true);
    expect(report.embeddings.pooling).toEqual({ mode: "last", normalize: true });
    expect(report.comparisons.map((c: { side: string; pass: boolean }) => [c.side, c.pass])).toEqual([
      ["converted", true],
      ["gguf", true],
    ]);
    const human = await b158(["eval", dir, b158file, "--tokens", "2,60,70,80"]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain("pooled by last token, L2-normalized");
    expect(human.stdout).toContain("min embedding cosine");
  });
});

describe("refused checkpoints", () => {
  it("a PrismML 1-bit checkpoint: convert exits 7 with E_FORMAT_REFUSED and says what it is; inspect lists it", async () => {
    const dir = join(root, "prism");
    await generateCheckpoint({ family: "prism-1bit", dir, dims: { layers: 1 } });
    const run = await b158(["convert", dir, "-o", join(root, "prism.b158"), "--layout", "q2_0"]);
    expect(run.code).toBe(7);
    expect(run.stderr).toContain("E_FORMAT_REFUSED");
    expect(run.stderr).toContain("binary 1-bit");
    const inspect = await b158(["inspect", dir]);
    expect(inspect.stdout + inspect.stderr).toContain("E_FORMAT_REFUSED");
  });
});
