import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint, type FixtureFamily } from "../fixtures/generate.js";
import { getValidator } from "../src/schemas.js";

/** The CLI as a user runs it: the built bin/run.js in a child process (npm test builds dist/ first). */
const repo = fileURLToPath(new URL("..", import.meta.url));
const example = join(repo, "fixtures", "example");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function b158(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1", ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-cli-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("b158 --help", () => {
  it("lists the commands", async () => {
    const run = await b158(["--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/inspect\s+Show what is inside a checkpoint/);
    expect(run.stdout).toMatch(/validate\s+Check a checkpoint/);
  });

  it.each(["inspect", "validate"])("%s --help has a description, flags and examples", async (command) => {
    const run = await b158([command, "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("USAGE");
    expect(run.stdout).toContain("--json");
    expect(run.stdout).toContain("EXAMPLES");
    expect(run.stdout).toContain(`b158 ${command} fixtures/example`);
  });
});

describe("b158 inspect", () => {
  it("shows the bundled example's family, plan and estimates (the README's main job)", async () => {
    const run = await b158(["inspect", "fixtures/example"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("3. BitNet b1.58, pre-quantized: packed U8 + weight_scale");
    expect(run.stdout).toContain("effective weight = ternary x weight_scale");
    expect(run.stdout).toMatch(/model\.layers\.\{0-3\}\.self_attn\.q_proj\.weight\s+U8\s+\[64, 256\] -> \[256, 256\]\s+ternary-linear\s+repack \+scale\s+tensor\s+yes\s+yes\s+yes\s+yes\s+yes\s+yes/);
    expect(run.stdout).toMatch(/model\.embed_tokens\.weight\s+BF16\s+\[512, 256\]\s+embedding\s+keep/);
    expect(run.stdout).toMatch(/tq2_0\s+[\d.]+ (KiB|MiB)\s+[\d.]+\s+2\.063\s+0/);
  });

  it("--json validates against schemas/inspect.schema.json and agrees with the human report", async () => {
    const run = await b158(["inspect", example, "--json"]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    const validate = getValidator("inspect");
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.family.id).toBe("bitnet-packed");
    expect(report.tensors.filter((t: { action: string }) => t.action === "repack")).toHaveLength(4 * 7);
  });

  const families: [FixtureFamily, number, string][] = [
    ["bitnet-1bitllm", 1, "ternarize"],
    ["bitnet-2b4t-bf16", 2, "ternarize"],
    ["bitnet-2b4t-packed", 3, "repack"],
    ["llama-bitnet-packed", 4, "repack"],
  ];
  it.each(families)("prints the right plan for a %s checkpoint (family %i)", async (family, number, action) => {
    const dir = join(root, family);
    await generateCheckpoint({ family, dir, dims: { layers: 2 }, shards: 2 });
    const run = await b158(["inspect", dir, "--json"]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(getValidator("inspect")(report)).toBe(true);
    expect(report.family.number).toBe(number);
    const linears = report.tensors.filter((t: { role: string }) => t.role === "ternary-linear");
    expect(linears).toHaveLength(14);
    expect(linears.every((t: { action: string }) => t.action === action)).toBe(true);
    expect(report.files.weights).toHaveLength(2);
    expect(report.files.index).toBe("model.safetensors.index.json");
  });

  it("a generic model with --ternarize says the conversion is lossy", async () => {
    const dir = join(root, "generic");
    await generateCheckpoint({ family: "llama-generic", dir, dims: { layers: 1 } });
    const run = await b158(["inspect", dir, "--ternarize", "model.layers.*_proj.weight"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("5. Generic safetensors model");
    expect(run.stdout).toContain("It is lossy");
    expect(run.stdout).toContain("W_LOSSY_TERNARIZATION");
  });

  it("a missing source fails with E_SOURCE_NOT_FOUND, exit 3, and no stack trace", async () => {
    const run = await b158(["inspect", join(root, "nope")]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("E_SOURCE_NOT_FOUND");
    expect(run.stderr).toContain("Try this:");
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it("under --json a failure is one JSON error document on stdout", async () => {
    const run = await b158(["inspect", join(root, "nope"), "--json"]);
    expect(run.code).toBe(3);
    const body = JSON.parse(run.stdout);
    expect(body.error.code).toBe("E_SOURCE_NOT_FOUND");
    expect(body.error.exit).toBe(3);
    expect(typeof body.error.hint).toBe("string");
  });

  it("an unknown flag is a usage error (exit 2)", async () => {
    const run = await b158(["inspect", example, "--frobnicate"]);
    expect(run.code).toBe(2);
  });
});

describe("b158 validate", () => {
  it("passes the bundled example (exit 0) and scans every tensor", async () => {
    const run = await b158(["validate", "fixtures/example", "--json"]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(getValidator("validate")(report)).toBe(true);
    expect(report.ok).toBe(true);
    expect(report.tensorsScanned).toBe(report.tensors);
    expect(report.summary.errors).toBe(0);
  });

  it("reports every problem in a damaged checkpoint, names each tensor, and exits 4", async () => {
    const dir = join(root, "damaged");
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir, dims: { layers: 2 } });
    const file = join(dir, "model.safetensors");
    const bytes = new Uint8Array(await readFile(file));
    const view = new DataView(bytes.buffer);
    const headerLength = Number(view.getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    const at = (name: string) => 8 + headerLength + header[name].data_offsets[0];
    // NaN in a norm, code 3 in a packed weight, a zero weight_scale, an all-zero packed weight
    view.setUint16(at("model.layers.0.input_layernorm.weight") + 6, 0x7fc0, true);
    bytes[at("model.layers.0.mlp.up_proj.weight") + 5] = 0xff;
    view.setUint16(at("model.layers.1.self_attn.k_proj.weight_scale"), 0, true);
    const down = header["model.layers.1.mlp.down_proj.weight"].data_offsets;
    bytes.fill(0x55, at("model.layers.1.mlp.down_proj.weight"), at("model.layers.1.mlp.down_proj.weight") + down[1] - down[0]);
    await writeFile(file, bytes);
    expect(fixture.files).toContain("model.safetensors");

    const json = await b158(["validate", dir, "--json"]);
    expect(json.code).toBe(4);
    const report = JSON.parse(json.stdout);
    expect(getValidator("validate")(report)).toBe(true);
    expect(report.ok).toBe(false);
    const found = report.diagnostics.map((d: { code: string; tensor?: string }) => `${d.code} ${d.tensor}`);
    expect(found).toEqual(
      expect.arrayContaining([
        "E_NONFINITE model.layers.0.input_layernorm.weight",
        "E_PACKED_CODE model.layers.0.mlp.up_proj.weight",
        "E_SCALE_INVALID model.layers.1.self_attn.k_proj.weight_scale",
        "E_ALL_ZERO model.layers.1.mlp.down_proj.weight",
      ]),
    );
    expect(report.summary.errors).toBe(4);

    const human = await b158(["validate", dir]);
    expect(human.code).toBe(4);
    expect(human.stdout).toMatch(/^FAILED: 4 errors(, \d+ warnings?)?\.$/m);
    expect(human.stderr).toContain("E_VALIDATION_FAILED");
  });
});

describe("b158 convert", () => {
  it("runs the README's main job: convert the example, then inspect the result", async () => {
    const output = join(root, "readme.b158");
    const convert = await b158(["convert", "fixtures/example", "-o", output, "--layout", "tq2_0", "--force"]);
    expect(convert.code, convert.stderr).toBe(0);
    expect(convert.stdout).toMatch(/Wrote .*readme\.b158 \(1\.06 MiB\) in [\d.]+ s with \d+ worker threads?, validated/);
    expect(convert.stdout).toContain("ternary-linear 2.063");
    // stderr is not a terminal here: the log has a line per phase and one per tensor, as llama-quantize prints them
    expect(convert.stderr).toMatch(/^converting 46 tensors to tq2_0: 1\.04 MiB$/m);
    expect(convert.stderr).toMatch(/^\[\s*\d+\/46\] model\.layers\.0\.self_attn\.q_proj\.weight \[256, 256\] u8 -> tq2_0 {2}16\.0 KiB -> 16\.5 KiB$/m);
    expect(convert.stderr.match(/^\[\s*\d+\/46\] /gm)).toHaveLength(46);
    expect(convert.stderr).toMatch(/^validating the written file: 1\.06 MiB$/m);
    const [inspect, all] = await Promise.all([b158(["inspect", output]), b158(["inspect", output, "--all"])]);
    expect(inspect.code).toBe(0);
    // by default: 80 columns, ternary linears per role across the layers
    for (const line of inspect.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(inspect.stdout).toContain("Ternary linears: 7 roles across 4 layers, tq2_0 (block_size=256)");
    expect(inspect.stdout).toMatch(/^ {2}self_attn\.q_proj\s+\[256, 256\]\s+4\s+0\.\d+\s+0\.\d+\s+0\.\d+$/m);
    expect(all.stdout).toMatch(/^ {2}tensor\s+layout\s+layout params\s+shape/m);
    expect(all.stdout).toMatch(/model\.layers\.0\.self_attn\.q_proj\.weight\s+tq2_0\s+block_size=256\s+\[256, 256\]\s+0\.\d+\s+[\d.]+% \/ [\d.]+% \/ [\d.]+%\s+2\.063/);
  });

  it("gives byte-identical files across runs and worker thread counts (real workers)", async () => {
    const source = join(root, "det-src");
    await generateCheckpoint({ family: "bitnet-2b4t-bf16", dir: source, dims: { layers: 2 } });
    const outputs: Buffer[] = [];
    for (const threads of ["1", "2", "2"]) {
      const output = join(root, `det-${outputs.length}.b158`);
      const run = await b158(["convert", source, "-o", output, "--layout", "tl2", "--threads", threads, "--json"]);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).threads).toBe(Number(threads));
      outputs.push(await readFile(output));
    }
    expect(Buffer.compare(outputs[0]!, outputs[1]!)).toBe(0);
    expect(Buffer.compare(outputs[1]!, outputs[2]!)).toBe(0);
  });

  it("--json prints the machine summary; inspect --json of the file validates against its schema", async () => {
    const output = join(root, "json.b158");
    // layout names in any case, as llama-quantize takes them
    const run = await b158(["convert", example, "-o", output, "--layout", "I2_S", "--json"]);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(getValidator("convert")(summary), JSON.stringify(getValidator("convert").errors)).toBe(true);
    expect(summary.warnings).toContainEqual(expect.objectContaining({ severity: "warning", code: "W_GGUF_ACTIVATION" }));
    // progress goes to stderr under --json too: stdout is only the document
    expect(run.stderr).toMatch(/^\[46\/46\] /m);
    expect(summary).toMatchObject({ path: output, layout: "i2_s", family: "bitnet-packed", validated: true, tensors: { total: 46, byLayout: { i2_s: 28, bf16: 18 } } });
    expect(summary.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(summary.size).toBe((await readFile(output)).byteLength);
    const inspect = await b158(["inspect", output, "--json"]);
    const report = JSON.parse(inspect.stdout);
    const validate = getValidator("inspect-b158");
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    const q = report.tensors.find((t: { name: string }) => t.name === "model.layers.0.self_attn.q_proj.weight");
    expect(q).toMatchObject({ layout: "i2_s", params: { block_size: 128, variant: "x86" }, length: (256 * 256) / 4 + 32 });
    // offset is absolute: the payload's bytes there hash to its sha256
    const bytes = (await readFile(output)).subarray(q.offset, q.offset + q.length);
    expect((await import("node:crypto")).createHash("sha256").update(bytes).digest("hex")).toBe(q.sha256);
  });

  it("refuses to overwrite an existing file without --force (exit 2), and leaves it intact", async () => {
    const output = join(root, "exists.b158");
    await writeFile(output, "precious");
    const run = await b158(["convert", example, "-o", output, "--layout", "tq1_0"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("E_OUTPUT_EXISTS");
    expect(await readFile(output, "utf8")).toBe("precious");
  });

  it("Ctrl-C (SIGINT) leaves nothing at the target and no temp file", async () => {
    const source = join(root, "sigint-src");
    await generateCheckpoint({ family: "bitnet-1bitllm", dir: source, dims: { layers: 8, hidden: 512, intermediate: 1536, heads: 8, kvHeads: 8 } });
    const outDir = join(root, "sigint-out");
    await mkdir(outDir);
    const child = spawn(process.execPath, [join(repo, "bin", "run.js"), "convert", source, "-o", join(outDir, "x.b158"), "--layout", "tq2_0", "--threads", "1"], { cwd: repo });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    // Interrupt once the writer's temp file exists: the conversion is then under way, whatever the machine's speed.
    const poll = setInterval(() => {
      void readdir(outDir).then((names) => {
        if (names.some((n) => n.endsWith(".partial"))) {
          clearInterval(poll);
          child.kill("SIGINT");
        }
      });
    }, 10);
    child.on("exit", () => clearInterval(poll));
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toContain("E_INTERRUPTED");
    expect(await readdir(outDir)).toEqual([]);
  });
});

describe("b158 validate <file.b158>", () => {
  it("passes a good file (exit 0) and names the damaged tensor of a flipped payload (exit 4)", async () => {
    const output = join(root, "to-damage.b158");
    expect((await b158(["convert", example, "-o", output, "--layout", "tq1_0"])).code).toBe(0);
    const ok = await b158(["validate", output, "--json"]);
    expect(ok.code).toBe(0);
    expect(getValidator("validate")(JSON.parse(ok.stdout))).toBe(true);
    const bytes = await readFile(output);
    const report = JSON.parse((await b158(["inspect", output, "--json"])).stdout);
    const target = report.tensors.find((t: { layout: string }) => t.layout === "tq1_0");
    bytes[target.offset + 3] = bytes[target.offset + 3]! ^ 0xff;
    await writeFile(output, bytes);
    const bad = await b158(["validate", output, "--json"]);
    expect(bad.code).toBe(4);
    const body = JSON.parse(bad.stdout);
    expect(body.ok).toBe(false);
    expect(body.diagnostics).toContainEqual(expect.objectContaining({ code: "E_B158_HASH", tensor: target.name }));
  });

  it("a file with a broken structure fails with its code and exit 3", async () => {
    const output = join(root, "broken.b158");
    await writeFile(output, Buffer.concat([Buffer.from([0x89, 0x42, 0x31, 0x35, 0x38, 0x0d, 0x0a, 0x1a, 9, 0]), Buffer.alloc(100)]));
    const run = await b158(["validate", output]);
    expect(run.code).toBe(7);
    expect(run.stderr).toContain("E_B158_VERSION");
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("b158 convert --format gguf, export, and GGUF inspect / validate", () => {
  it("convert -o *.gguf writes a GGUF; inspect --json and validate --json accept it", async () => {
    const output = join(root, "cli.gguf");
    const run = await b158(["convert", example, "-o", output, "--layout", "tq2_0", "--embeddings", "q8_0", "--json"]);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(getValidator("convert")(summary), JSON.stringify(getValidator("convert").errors)).toBe(true);
    expect(summary.gguf.architecture).toBe("bitnet");
    expect(summary.gguf.types).toMatchObject({ Q8_0: 1, TQ2_0: 28 });
    expect(summary.gguf.diagnostics.map((d: { code: string }) => d.code)).toContain("W_GGUF_ACTIVATION");
    const inspect = await b158(["inspect", output, "--json"]);
    expect(inspect.code).toBe(0);
    expect(getValidator("inspect-gguf")(JSON.parse(inspect.stdout))).toBe(true);
    const human = await b158(["inspect", output]);
    expect(human.stdout).toMatch(/Runtime\s+loads in mainline llama\.cpp/);
    expect(human.stdout).toContain("token_embd.weight");
    const validate = await b158(["validate", output, "--json"]);
    expect(validate.code).toBe(0);
    expect(getValidator("validate")(JSON.parse(validate.stdout))).toBe(true);
  });

  it("export writes a bitnet.cpp GGUF from a .b158 alone, which inspect says only the bitnet.cpp forks load", async () => {
    const source = join(root, "cli-i2s.b158");
    expect((await b158(["convert", example, "-o", source, "--layout", "i2_s"])).code).toBe(0);
    const output = join(root, "cli-i2s.gguf");
    const run = await b158(["export", source, "-o", output]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("target    bitnet.cpp-2024");
    expect(run.stdout).toContain("loads in bitnet.cpp 2024-2025 fork, bitnet.cpp 2026 fork");
    const inspect = await b158(["inspect", output]);
    expect(inspect.stdout).toMatch(/Runtime\s+loads in bitnet\.cpp 2024-2025 fork, bitnet\.cpp 2026 fork\n/);
    expect(inspect.stdout).toContain("I2_S");
    const again = await b158(["export", source, "-o", output, "--json"]);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stdout).error.code).toBe("E_OUTPUT_EXISTS");
  });

  it("q8_0 embeddings are refused for .b158 output with a usage error", async () => {
    const run = await b158(["convert", example, "-o", join(root, "q8.b158"), "--layout", "tq2_0", "--embeddings", "q8_0", "--json"]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe("E_USAGE");
  });

  it("a damaged GGUF is rejected with its code and no stack trace", async () => {
    const output = join(root, "cli.gguf");
    const bytes = await readFile(output);
    const damaged = join(root, "damaged.gguf");
    await writeFile(damaged, bytes.subarray(0, bytes.length - 100));
    const run = await b158(["validate", damaged, "--json"]);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout).error.code).toBe("E_GGUF_TRUNCATED");
    const human = await b158(["inspect", damaged]);
    expect(human.code).toBe(3);
    expect(human.stderr).toContain("E_GGUF_TRUNCATED");
    expect(human.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});
