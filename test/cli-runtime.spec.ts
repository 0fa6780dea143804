import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../src/convert/convert.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import { readNpyFile } from "../src/formats/npy/npy.js";
import { loadModel } from "../src/runtime/model.js";
import { getValidator } from "../src/schemas.js";
import { rewriteB158 } from "./support/rewrite-b158.js";

/** `b158 eval`, `b158 run` and `convert --eval` as a user runs them: the built CLI in a child process. */
const repo = fileURLToPath(new URL("..", import.meta.url));
const example = join(repo, "fixtures", "example");

function b158(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

let root: string;
let converted: string;
let broken: string;
const TOKENS = "1,138,171,287,283,7,231,63";

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-cli-runtime-"));
  converted = join(root, "example.b158");
  await convertCheckpoint(example, { layout: "i2_s", output: converted, threads: 0 });
  broken = join(root, "silu.b158");
  await rewriteB158(converted, broken, { config: (c) => ({ ...c, hidden_act: "silu" }) });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("b158 eval", () => {
  it("passes a lossless conversion: the report validates against schemas/eval.schema.json; --logits-out writes NumPy files", async () => {
    const logits = join(root, "logits");
    const run = await b158(["eval", example, converted, "--tokens", TOKENS, "--json", "--logits-out", logits]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^loading the source model: \d+ tensors\nrunning 8 tokens through the source model: 8 tokens\nloading the converted model: \d+ tensors\nrunning 8 tokens through the converted model: 8 tokens\n$/);
    const report = JSON.parse(run.stdout);
    const validate = getValidator("eval");
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.pass).toBe(true);
    expect(report.comparisons[0].positions).toHaveLength(8);
    expect(report.comparisons[0].summary.minCosine).toBeCloseTo(1, 12);
    expect((await readdir(logits)).sort()).toEqual(["converted.npy", "source.npy"]);
    const source = await readNpyFile(join(logits, "source.npy"));
    expect(source.shape).toEqual([8, 512]);
    // the file holds the runtime's logits, as the library computes them
    const model = await loadModel(example, { contextLength: 8 });
    const expected = await model.forward(TOKENS.split(",").map(Number)).finally(() => model.close());
    expect(source.values).toEqual(expected);
  });

  it("fails a conversion with the wrong activation: exit 4 with the report under --json, E_EVAL_THRESHOLD otherwise", async () => {
    const json = await b158(["eval", example, broken, "--tokens", TOKENS, "--json"]);
    expect(json.code).toBe(4);
    const report = JSON.parse(json.stdout);
    expect(getValidator("eval")(report)).toBe(true);
    expect(report.pass).toBe(false);
    const human = await b158(["eval", example, broken, "--text", "Hello world, hello."]);
    expect(human.code).toBe(4);
    expect(human.stdout).toContain("FAIL: the converted model does not compute what the source computes");
    expect(human.stderr).toContain("E_EVAL_THRESHOLD");
    // explicit thresholds override the defaults
    const lenient = await b158(["eval", example, broken, "--tokens", TOKENS, "--min-cosine", "0", "--min-top1", "0", "--max-kl", "10", "--max-perplexity-delta", "10"]);
    expect(lenient.code, lenient.stderr).toBe(0);
    expect(lenient.stdout).toMatch(/PASS/);
  });

  it("refuses bad token lists and numbers with a usage error", async () => {
    expect((await b158(["eval", example, converted, "--tokens", "1,x"])).code).toBe(2);
    expect((await b158(["eval", example, converted, "--tokens", "1,2", "--min-cosine", "high"])).code).toBe(2);
  });
});

describe("b158 run", () => {
  it("streams greedy text, and tokens/s go to stderr", async () => {
    const run = await b158(["run", converted, "--prompt", "The quick brown fox", "-n", "8"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.length).toBeGreaterThan(1);
    expect(run.stderr).toMatch(/prompt \d+ tokens in [\d.]+ s \([\d.]+ tokens\/s\); generated 8 tokens in [\d.]+ s \([\d.]+ tokens\/s\)/);
  });

  it("--json validates against schemas/run.schema.json; the same seed gives the same tokens; --logits-out holds the prompt's logits", async () => {
    const args = ["run", converted, "--tokens", TOKENS, "-n", "6", "--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--seed", "11", "--json", "--ignore-eos"];
    const out = join(root, "prompt.npy");
    const [a, b] = [await b158([...args, "--logits-out", out]), await b158(args)];
    expect(a.code, a.stderr).toBe(0);
    const report = JSON.parse(a.stdout);
    const validate = getValidator("run");
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.generated.tokens).toHaveLength(6);
    expect(JSON.parse(b.stdout).generated).toEqual(report.generated);
    expect(report.sampling).toEqual({ temperature: 0.9, topK: 50, topP: 0.95, seed: 11 });
    const logits = await readNpyFile(out);
    expect(logits.shape).toEqual([8, 512]);
    expect(report.model.head).toBe("bf16");
    const int8 = await b158(["run", converted, "--tokens", TOKENS, "-n", "2", "--json", "--ignore-eos", "--int8-head"]);
    expect(int8.code, int8.stderr).toBe(0);
    expect(JSON.parse(int8.stdout).model.head).toBe("int8-rows");
  });

  it("a GGUF has no tokenizer the runtime reads: text prompts are refused, token ids run", async () => {
    const gguf = join(root, "example.gguf");
    const file = await openB158File(converted);
    await exportGguf(file, { output: gguf }).finally(() => file.close());
    const text = await b158(["run", gguf, "--prompt", "hello"]);
    expect(text.code).toBe(3);
    expect(text.stderr).toContain("E_TOKENIZER_MISSING");
    const ids = await b158(["run", gguf, "--tokens", TOKENS, "-n", "3", "--json"]);
    expect(ids.code, ids.stderr).toBe(0);
    expect(JSON.parse(ids.stdout).generated.text).toBeNull();
  });
});

describe("b158 convert --eval", () => {
  it("checks the written file before publishing it", async () => {
    const output = join(root, "checked.b158");
    const run = await b158(["convert", example, "-o", output, "--layout", "tq2_0", "--eval", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary.eval.pass).toBe(true);
    expect(getValidator("eval")({ schemaVersion: 1, tool: { name: "b158", version: "x" }, ...summary.eval })).toBe(true);
    expect(await readdir(root)).toContain("checked.b158");
  });
});
