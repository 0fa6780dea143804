import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpoint } from "../fixtures/generate.js";
import { registerSourceResolver } from "../src/checkpoint/resolve.js";
import { convertCheckpoint } from "../src/convert/convert.js";
import { exportGguf } from "../src/export/gguf.js";
import { openB158File } from "../src/formats/b158/read.js";
import type { HubEnv } from "../src/hub/env.js";
import { modelCard } from "../src/hub/model-card.js";
import { describePublishedFile } from "../src/hub/published-file.js";
import { push } from "../src/hub/push.js";
import { hubResolver } from "../src/hub/resolver.js";
import { cardMetadata } from "../src/hub/source-card.js";
import { getValidator } from "../src/schemas.js";
import { TOOL } from "../src/version.js";
import { b158, cliEnv, repoRoot } from "./support/cli.js";
import { MockHub, sha256 } from "./support/mock-hub.js";

/**
 * The model card `b158 push` writes for .b158 and GGUF files: what it says, and that its
 * "How to load" commands work when pasted as they are into a shell in an empty folder, against
 * the mock Hub.
 */
const SOURCE = "org/bitnet-small";
const TARGET = "tester/bitnet-small-b158";
const fast = { attempts: 3, baseDelayMs: 5 };
let root: string;
let hub: MockHub;
let env: HubEnv;
let published: string[];
let card: string;
let manifest: { license: string | null; files: { path: string; format: string; layout: string | null; source: { repo?: string }; runtimes: { id: string; via: string; computesModel: boolean | null }[] }[] };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "b158-card-"));
  // a 1bitLLM-style model (SiLU: every runtime computes it right), with a model card naming its license
  const fixture = await generateCheckpoint({ family: "bitnet-1bitllm", dir: join(root, "source") });
  const files: Record<string, Uint8Array> = { "README.md": new TextEncoder().encode("---\nlicense: mit\nlanguage: en\n---\n# bitnet-small\n") };
  for (const name of fixture.files) files[name] = new Uint8Array(await readFile(join(fixture.dir, name)));
  hub = new MockHub();
  await hub.start();
  hub.addRepo(SOURCE, files);
  env = { endpoint: hub.url, token: hub.writeToken, cacheDir: join(root, "cache"), offline: false };
  registerSourceResolver(hubResolver({ env, retry: fast }));

  const out = join(root, "out");
  await mkdir(out);
  const b158File = join(out, "bitnet-small.b158"); // no GGUF of its name is published: the card shows how to export one
  const i2s = join(root, "bitnet-small-i2_s.b158");
  await convertCheckpoint(`hf://${SOURCE}`, { layout: "tq2_0", output: b158File, threads: 0 });
  await convertCheckpoint(`hf://${SOURCE}`, { layout: "i2_s", output: i2s, threads: 0 });
  for (const [from, to] of [[b158File, "bitnet-small-tq2_0.gguf"], [i2s, "bitnet-small-i2_s.gguf"]] as const) {
    const file = await openB158File(from);
    try {
      await exportGguf(file, { output: join(out, to) });
    } finally {
      await file.close();
    }
  }
  published = [b158File, join(out, "bitnet-small-tq2_0.gguf"), join(out, "bitnet-small-i2_s.gguf")];
  const result = await push({ files: published, repo: TARGET, env, retry: fast });
  expect(result.diagnostics).toEqual([]);
  const repo = hub.repo(TARGET)!.files("main");
  card = new TextDecoder().decode(repo.get("README.md"));
  manifest = JSON.parse(new TextDecoder().decode(repo.get("b158-manifest.json")));
  expect(result.card).toBe(card);
});
afterAll(async () => {
  await hub.close();
  await rm(root, { recursive: true, force: true });
});

describe("the model card", () => {
  it("front matter: base_model with base_model_relation: quantized, the source's license, tags", () => {
    const meta = cardMetadata(card);
    expect(meta.get("base_model")).toBe(SOURCE);
    expect(meta.get("base_model_relation")).toBe("quantized");
    expect(meta.get("license")).toBe("mit");
    expect(card).toMatch(/^---\n[\s\S]*tags:\n(  - \S+\n)*  - gguf\n[\s\S]*  - tq2_0\n[\s\S]*---\n/);
    expect(manifest.license).toBe("mit");
  });

  it("links follow HF_ENDPOINT, and the commands set it", () => {
    expect(card).toContain(`[${SOURCE}](${hub.url}/${SOURCE})`);
    expect(card).not.toContain("huggingface.co");
    expect(card).toContain(`export HF_ENDPOINT=${hub.url}\n`);
  });

  it("says per file which runtimes load it and the command to run it", () => {
    const section = (file: string) => card.slice(card.indexOf(`### \`${file}\``)).split(/\n### /)[0]!;
    expect(section("bitnet-small.b158")).toContain(`npx --yes b158@${TOOL.version} run bitnet-small-b158/bitnet-small.b158 --prompt "Once upon a time"`);
    expect(section("bitnet-small.b158")).toContain(`npx --yes b158@${TOOL.version} export bitnet-small-b158/bitnet-small.b158 -o bitnet-small-b158/bitnet-small.gguf`);
    // TQ2_0 is mainline's type; bitnet.cpp's forks (and PrismML's) are llama.cpp forks that kept it
    expect(section("bitnet-small-tq2_0.gguf")).toContain("loads in mainline llama.cpp, bitnet.cpp 2024-2025 fork, bitnet.cpp 2026 fork, PrismML llama.cpp fork.");
    expect(section("bitnet-small-tq2_0.gguf")).toContain("llama-cli -m bitnet-small-b158/bitnet-small-tq2_0.gguf");
    expect(section("bitnet-small-tq2_0.gguf")).toContain('model="$PWD/bitnet-small-b158/bitnet-small-tq2_0.gguf"');
    expect(section("bitnet-small-i2_s.gguf")).toContain("loads in bitnet.cpp 2024-2025 fork, bitnet.cpp 2026 fork.");
    expect(section("bitnet-small-i2_s.gguf")).toContain('python run_inference.py -m "$model"');
    expect(section("bitnet-small-i2_s.gguf")).not.toContain("llama-cli");
    expect(card).not.toContain("Wrong outputs"); // SiLU everywhere
  });

  it("the manifest holds .b158 and GGUF entries, with their source and runtimes, and meets its schema", () => {
    expect(getValidator("manifest")(manifest)).toBe(true);
    const byPath = new Map(manifest.files.map((f) => [f.path, f]));
    expect(byPath.get("bitnet-small.b158")).toMatchObject({ format: "b158", layout: "tq2_0", source: { repo: SOURCE } });
    expect(byPath.get("bitnet-small.b158")!.runtimes.map((r) => `${r.id}:${r.via}`)).toEqual(["b158:file", "llama.cpp:export"]);
    // the GGUF records its source (general.source.repo_url), so a GGUF pushed alone still names it
    expect(byPath.get("bitnet-small-tq2_0.gguf")).toMatchObject({ format: "gguf", layout: "tq2_0", source: { kind: "hub", repo: SOURCE } });
    expect(byPath.get("bitnet-small-tq2_0.gguf")!.runtimes.map((r) => r.id)).toEqual(["llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026", "prismml"]);
    expect(byPath.get("bitnet-small-i2_s.gguf")!.runtimes.map((r) => r.id)).toEqual(["bitnet.cpp-2024", "bitnet.cpp-2026"]);
    expect(manifest.files.flatMap((f) => f.runtimes).every((r) => r.computesModel !== false)).toBe(true);
  });

  it('"How to load" works when followed literally: pasted into a shell in an empty folder', async () => {
    const blocks = [...card.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBe(5); // download; the .b158 (check, run, export); the TQ2_0 GGUF in llama.cpp and in bitnet.cpp; the I2_S GGUF in bitnet.cpp
    const work = join(root, "user");
    const bin = join(root, "standins");
    await mkdir(join(work, "path", "to", "BitNet"), { recursive: true });
    // what the card asks the user to have: a bitnet.cpp checkout at the path they put in its place
    await writeFile(join(work, "path", "to", "BitNet", "run_inference.py"), "# a bitnet.cpp checkout\n");
    await mkdir(bin);
    // Stand-ins for commands that cannot run here: `npx --yes b158@<version>` (not on the registry
    // yet) runs this checkout's CLI; llama-cli / llama-completion are real llama.cpp (node-llama-cpp);
    // bitnet.cpp is checked, not run (test/support/standins).
    const standins: Record<string, string> = {
      npx: `[ "$1" = "--yes" ] && [ "$2" = "b158@${TOOL.version}" ] || { echo "stand-in: unexpected npx $*" >&2; exit 97; }\nshift 2\nexec "${process.execPath}" "${join(repoRoot, "bin", "run.js")}" "$@"`,
      "llama-cli": `exec "${process.execPath}" "${join(repoRoot, "test", "support", "standins", "llama-cli.mjs")}" "$@"`,
      "llama-completion": `exec "${process.execPath}" "${join(repoRoot, "test", "support", "standins", "llama-cli.mjs")}" "$@"`,
      python: `exec "${process.execPath}" "${join(repoRoot, "test", "support", "standins", "bitnet-run-inference.mjs")}" "$@"`,
    };
    for (const [name, body] of Object.entries(standins)) {
      await writeFile(join(bin, name), `#!/bin/sh\n${body}\n`);
      await chmod(join(bin, name), 0o755);
    }
    const script = ["set -euo pipefail", ...blocks].join("\n");
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile("bash", ["-x", "-c", script], { cwd: work, env: cliEnv({ HF_HOME: join(root, "user-hf"), PATH: `${bin}:${process.env.PATH}` }), maxBuffer: 1 << 26 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }),
      );
    });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    // the download put every file in ./bitnet-small-b158, byte for byte
    for (const file of published) expect(sha256(new Uint8Array(await readFile(join(work, "bitnet-small-b158", file.split("/").pop()!))))).toBe(sha256(new Uint8Array(await readFile(file))));
    expect(run.stdout).toContain("OK"); // b158 validate
    expect(run.stdout).toMatch(/^Once upon a time.+$/m); // b158 run, and llama.cpp's completion
    expect(run.stderr).toContain("stand-in: llama.cpp loaded bitnet-small-b158/bitnet-small-tq2_0.gguf");
    expect(run.stdout).toMatch(/bitnet-small-i2_s\.gguf loads in bitnet\.cpp-2024/);
    expect(run.stdout).toMatch(/bitnet-small-tq2_0\.gguf loads in bitnet\.cpp-2024/);
    // `b158 export` wrote the GGUF the card names, and it is a TQ2_0 GGUF for llama.cpp
    expect(run.stdout).toMatch(/Wrote bitnet-small-b158\/bitnet-small\.gguf .*\n.*\n.*\n  tensors .*TQ2_0/);
  });
});

describe("cards for a model some runtimes compute wrongly (relu2, 2B-4T)", () => {
  it("name the runtimes that load the file but compute another FFN activation", async () => {
    const dir = join(root, "relu2");
    await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(dir, "src"), dims: { layers: 1 } });
    const b158File = join(dir, "m-i2_s.b158");
    await convertCheckpoint(join(dir, "src"), { layout: "i2_s", output: b158File, threads: 0 });
    const file = await openB158File(b158File);
    try {
      await exportGguf(file, { output: join(dir, "m-i2_s.gguf"), target: "bitnet.cpp-2024" });
    } finally {
      await file.close();
    }
    const files = await Promise.all([b158File, join(dir, "m-i2_s.gguf")].map(describePublishedFile));
    const text = modelCard({ repo: "tester/relu2", branch: "main", endpoint: "https://huggingface.co", files, baseModels: [], license: null, tool: TOOL });
    expect(files[1]!.activation).toBe("relu2");
    expect(files[1]!.runtimes.map((r) => `${r.id}:${r.computesModel}`)).toEqual(["bitnet.cpp-2024:true", "bitnet.cpp-2026:false"]);
    const gguf = text.slice(text.indexOf("### `m-i2_s.gguf`"));
    expect(gguf).toContain("**Wrong outputs in bitnet.cpp 2026 fork:** it computes a silu FFN for this model, which needs relu2");
    expect(gguf).toContain("With bitnet.cpp (github.com/microsoft/BitNet; bitnet.cpp 2024-2025 fork)"); // the release that computes it right, only
    // the .b158: b158's own runtime is right; mainline has no I2_S, so only the bitnet.cpp exports are listed
    expect(files[0]!.runtimes.map((r) => `${r.id}:${r.via}:${r.computesModel}`)).toEqual(["b158:file:true", "bitnet.cpp-2024:export:true", "bitnet.cpp-2026:export:false"]);
    expect(text).not.toContain("export HF_ENDPOINT"); // the public Hub needs none
    expect(text).not.toContain("base_model"); // a local source names none...
    expect(text).toContain("The source's license could not be determined");
  });
});

describe("b158 push (CLI)", () => {
  it("--dry-run prints the card and writes nothing; --base-model and --license fill what the files do not say", async () => {
    const local = join(root, "relu2", "m-i2_s.gguf");
    const cliHome = { HF_ENDPOINT: hub.url, HF_HOME: join(root, "push-cli") };
    const bare = await b158(["push", local, "tester/dry-cli", "--dry-run"], cliHome);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stderr).toContain("W_BASE_MODEL_UNKNOWN");
    expect(bare.stderr).toContain("W_LICENSE_UNKNOWN");
    expect(bare.stdout).toContain("README.md:\n\n---\n");
    expect(bare.stdout).toContain("## How to load");
    hub.log.length = 0;
    const run = await b158(["push", local, "tester/dry-cli", "--dry-run", "--base-model", "microsoft/bitnet-b1.58-2B-4T", "--license", "mit", "--json"], cliHome);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ dryRun: true, license: "mit", diagnostics: [] });
    expect(result.card).toContain("base_model: microsoft/bitnet-b1.58-2B-4T\nbase_model_relation: quantized\nlicense: mit\n");
    expect(hub.log).toEqual([]);
    expect(hub.repo("tester/dry-cli")).toBeUndefined();
  });

  it("refuses a license that is not an id and a file name the card cannot hold (E_USAGE, exit 2)", async () => {
    const local = join(root, "relu2", "m-i2_s.gguf");
    await expect(push({ files: [local], repo: "tester/x", env, dryRun: true, license: "mit\nbase_model: evil/model" })).rejects.toMatchObject({ code: "E_USAGE" });
    const spaced = join(root, "relu2", "my model.gguf");
    await copyFile(local, spaced);
    const name = await b158(["push", spaced, "tester/x", "--dry-run", "--license", "mit"], { HF_ENDPOINT: hub.url, HF_HOME: join(root, "push-cli") });
    expect(name.code).toBe(2);
    expect(name.stderr.replace(/\s+/g, " ")).toContain("plain file names");
  });
});
