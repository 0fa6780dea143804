import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { getValidator } from "../src/schemas.js";

/**
 * What a new user meets around the commands (issue 15): help, errors, did-you-mean, hints, the
 * progress log, reports for CI. The built CLI in a child process, as in test/cli.spec.ts; each
 * spawn costs about a second of CPU, so each test checks several things of one run.
 */
const repo = fileURLToPath(new URL("..", import.meta.url));
const example = join(repo, "fixtures", "example");

function b158(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...process.env, NO_COLOR: "1", ...env }, maxBuffer: 1 << 26 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

/** Exactly `{"error": {code, message, hint, details, exit}}` (schemas/error.schema.json), and nothing internal. */
function expectErrorDocument(stdout: string, code: string, exit: number): { code: string; message: string; hint: string; details: Record<string, unknown> } {
  const body = JSON.parse(stdout);
  const validate = getValidator("error");
  expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
  expect(body.error).toMatchObject({ code, exit });
  expect(typeof body.error.hint).toBe("string");
  expect(stdout.length).toBeLessThan(2048);
  expect(stdout).not.toMatch(/oclif|"parse"|manifest|"config"/);
  expect(stdout).not.toContain(homedir());
  return body.error;
}

let root: string;
let tiny: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-cli-ux-"));
  tiny = join(root, "tiny.b158");
  await convertCheckpoint(example, { layout: "i2_s", output: tiny, threads: 0 });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("usage errors are coded, in both modes", () => {
  it("a missing argument under --json: the error document only, exit 2", async () => {
    const run = await b158(["convert", "--json"]);
    expect(run.code).toBe(2);
    const error = expectErrorDocument(run.stdout, "E_USAGE", 2);
    expect(error.message).toContain("missing SOURCE");
    expect(error.hint).toContain("b158 convert SOURCE -o <file> --layout <i2_s|tl1|tl2|tq1_0|tq2_0|q2_0>");
    expect(run.stderr).toBe("");
  });

  it("an unknown layout: E_LAYOUT_UNKNOWN, exit 2, under --json and for people (no usage dump, no notes)", async () => {
    const json = await b158(["convert", example, "-o", join(root, "x.b158"), "--layout", "tq3_0", "--json"]);
    expect(json.code).toBe(2);
    expect(expectErrorDocument(json.stdout, "E_LAYOUT_UNKNOWN", 2).hint).toBe("Did you mean --layout tq1_0?");
    const human = await b158(["convert", example, "-o", join(root, "x.b158"), "--layout", "tq3_0"]);
    expect(human.code).toBe(2);
    expect(human.stdout).toBe("");
    expect(human.stderr).toBe(
      [
        "Error: b158 convert: --layout tq3_0: unknown layout; expected one of i2_s, tl1, tl2, tq1_0, tq2_0, q2_0",
        "Code: E_LAYOUT_UNKNOWN (exit 2)",
        "Try this: Did you mean --layout tq1_0?",
        "",
      ].join("\n"),
    );
  });

  it("a mistyped command or flag: did you mean, exit 2", async () => {
    const command = await b158(["conver", example, "--json"]);
    expect(command.code).toBe(2);
    expect(expectErrorDocument(command.stdout, "E_USAGE", 2).hint).toContain("Did you mean b158 convert?");
    const flag = await b158(["convert", example, "-o", "x.b158", "--layot", "tq2_0"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown flag --layot");
    expect(flag.stderr).toContain("Try this: Did you mean --layout?");
  });

  it("-o x.gguf --format b158 is refused before any work", async () => {
    const run = await b158(["convert", example, "-o", join(root, "named.gguf"), "--layout", "tq2_0", "--format", "b158", "--json"]);
    expect(run.code).toBe(2);
    expect(expectErrorDocument(run.stdout, "E_USAGE", 2).message).toContain("would be taken for a GGUF");
    expect(await readdir(root)).not.toContain("named.gguf");
  });
});

describe("oclif conventions", () => {
  it("b158 help, b158 help convert, -h and -v", async () => {
    const [help, helpConvert, short, version, mistyped] = await Promise.all([b158(["help"]), b158(["help", "convert"]), b158(["convert", "-h"]), b158(["-v"]), b158(["help", "conver"])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/convert\s+Convert a checkpoint/);
    expect(help.stdout).toMatch(/autocomplete\s+/);
    for (const run of [helpConvert, short]) {
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("$ b158 convert SOURCE -o <file> --layout <layout>");
      expect(run.stdout).toContain("hf://org/name[@revision]");
    }
    expect(version.stdout).toMatch(/^b158\/\d+\.\d+\.\d+ /);
    expect(mistyped.code).toBe(2);
    expect(mistyped.stderr).toContain("Try this: Did you mean b158 convert?");
  });

  it("push --help shows its arguments", async () => {
    const run = await b158(["push", "--help"]);
    expect(run.stdout).toContain("$ b158 push FILE... REPO");
    expect(run.stdout).toMatch(/ARGUMENTS\n\s+FILE\.\.\.\s+A \.b158 file to publish/);
  });

  it("shell completion is generated offline, with every command, flag and layout", async () => {
    const home = join(root, "home");
    const run = await b158(["autocomplete", "bash"], { HOME: home, XDG_CACHE_HOME: join(home, ".cache") });
    expect(run.code, run.stderr).toBe(0);
    const bash = await readFile(join(home, ".cache", "b158", "autocomplete", "functions", "bash", "b158.bash"), "utf8");
    expect(bash).toMatch(/^convert .*--layout .*--quiet/m);
    const zsh = await readFile(join(home, ".cache", "b158", "autocomplete", "functions", "zsh", "_b158"), "utf8");
    expect(zsh).toContain("layout options:(i2_s tl1 tl2 tq1_0 tq2_0 q2_0)");
  });

  it("the manifest: every command's arguments name what they take, descriptions are not hard-wrapped", async () => {
    const manifest = JSON.parse(await readFile(join(repo, "oclif.manifest.json"), "utf8"));
    const ours = Object.values(manifest.commands as Record<string, { id: string; description: string; args: Record<string, { description: string }> }>);
    expect(ours.map((c) => c.id).sort()).toEqual(["convert", "eval", "export", "help", "inspect", "pull", "push", "run", "validate"]);
    for (const command of ours) {
      expect(command.description, command.id).not.toMatch(/[^\n]\n[^\n]/);
      const described = Object.values(command.args).map((a) => a.description).join(" ");
      if (["convert", "eval", "inspect", "validate", "run", "pull"].includes(command.id)) expect(described, command.id).toContain("hf://");
      if (["inspect", "validate", "run", "export", "eval"].includes(command.id)) expect(described, command.id).toContain(".b158");
      if (["inspect", "validate", "run", "eval"].includes(command.id)) expect(described, command.id).toContain(".gguf");
    }
  });
});

describe("hints that point the right way", () => {
  it("random bytes named .gguf: a GGUF magic error; a missing .b158: no checkpoint advice", async () => {
    const random = join(root, "random.gguf");
    await writeFile(random, Buffer.alloc(256, 7));
    const gguf = await b158(["validate", random, "--json"]);
    expect(gguf.code).toBe(3);
    expectErrorDocument(gguf.stdout, "E_GGUF_MAGIC", 3);
    const missing = await b158(["validate", join(root, "gone.b158")]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("Code: E_SOURCE_NOT_FOUND");
    expect(missing.stderr).toContain("Try this: Check the path of the .b158 file.");
    expect(missing.stderr).not.toContain("config.json");
  });

  it("a path that looks local is never a Hub repo; a bare org/name says it tried both", async () => {
    const home = join(root, "hf-home");
    const local = await b158(["inspect", "fixtures/exampel"], { HF_HOME: home, HF_HUB_OFFLINE: "1" });
    expect(local.code).toBe(3);
    expect(local.stderr).toContain("Error: fixtures/exampel: no such file or directory");
    const bare = await b158(["validate", "nobody/nothing", "--json"], { HF_HOME: home, HF_HUB_OFFLINE: "1" });
    expect(bare.code).toBe(6);
    const error = expectErrorDocument(bare.stdout, "E_HUB_OFFLINE", 6);
    expect(error.message).toMatch(/^no local path nobody\/nothing; tried Hub repo nobody\/nothing: /);
    expect(error.hint).toContain("write hf://nobody/nothing");
  });

  it("export of a checkpoint directory says to convert it", async () => {
    const run = await b158(["export", example, "-o", join(root, "e.gguf")]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("is a checkpoint, not a .b158 file");
    expect(run.stderr).toContain("Try this: b158 convert");
  });

  it("--fallback that would leave no ternary tensor fails unless --allow-no-ternary", async () => {
    const dir = join(root, "3b-like");
    await generateCheckpoint({ family: "bitnet-1bitllm", dir, dims: { layers: 1, hidden: 320, intermediate: 864, heads: 4, kvHeads: 4 } });
    const run = await b158(["convert", dir, "-o", join(root, "floats.b158"), "--layout", "tq2_0", "--fallback", "f16", "--json"]);
    expect(run.code).toBe(3);
    const error = expectErrorDocument(run.stdout, "E_LAYOUT_SHAPE", 3);
    expect(error.message).toContain("no ternary tensor fits tq2_0");
    expect(error.hint).toContain("--allow-no-ternary");
    expect(await readdir(root)).not.toContain("floats.b158");
  });
});

describe("validate --strict", () => {
  it("says FAILED, not OK, when warnings fail it; counts are singular when they are one", async () => {
    const dir = join(root, "generic");
    await mkdir(dir);
    await generateCheckpoint({ family: "llama-generic", dir, dims: { layers: 1 } });
    const run = await b158(["validate", dir, "--ternarize", "model.layers.*_proj.weight", "--strict", "--quiet"]);
    expect(run.code).toBe(4);
    expect(run.stdout).not.toContain("OK");
    expect(run.stdout).toMatch(/^Diagnostics \(0 errors, 1 warning\)$/m);
    expect(run.stdout).toMatch(/^FAILED \(--strict\): no errors, but 1 warning\.$/m);
    expect(run.stderr).toContain("Error: " + dir + ": 0 errors, 1 warning (--strict fails on warnings)");
  });
});

describe("reports for CI", () => {
  it("validate --markdown: the diagnostics as a table for $GITHUB_STEP_SUMMARY; --quiet keeps stderr empty", async () => {
    const run = await b158(["validate", tiny, "--markdown", "--quiet"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toMatch(/^### b158 validate: OK$/m);
    expect(run.stdout).toContain("| severity | code | tensor | message |");
    expect(run.stdout).toMatch(/^\| warning \| `W_GGUF_ACTIVATION` \| {2}\| config\.json hidden_act is relu2/m);
  });

  it("inspect --markdown: the plan; convert --markdown: the summary", async () => {
    const [plan, convert] = await Promise.all([b158(["inspect", example, "--markdown"]), b158(["convert", example, "-o", join(root, "md.b158"), "--layout", "tq1_0", "--markdown", "--quiet"])]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain("#### Plan");
    expect(plan.stdout).toMatch(/^\| `model\.layers\.\{0-3\}\.self_attn\.q_proj\.weight` \| U8 \| \[256, 256\] \| ternary-linear \| repack \+scale \| tensor \| yes \| yes \| yes \| yes \| yes \| yes \|$/m);
    expect(convert.code, convert.stderr).toBe(0);
    expect(convert.stderr).toBe("");
    expect(convert.stdout).toMatch(/^### b158 convert: `.*md\.b158`$/m);
    expect(convert.stdout).toMatch(/^\| family \/ layout \| bitnet-packed \/ tq1_0 \|$/m);
  });

  it("--markdown and --json together are a usage error", async () => {
    const run = await b158(["validate", tiny, "--markdown", "--json"]);
    expect(run.code).toBe(2);
    expectErrorDocument(run.stdout, "E_USAGE", 2);
  });
});
