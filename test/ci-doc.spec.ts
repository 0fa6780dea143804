import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { generateCheckpoint } from "../fixtures/generate.js";
import { cliEnv, repoRoot } from "./support/cli.js";
import { MockHub } from "./support/mock-hub.js";

/** docs/ci.md's workflow follows the rules it states, and uses only commands and flags b158 has. */
interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  if?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}
interface Workflow {
  env: Record<string, string>;
  jobs: Record<string, { env?: Record<string, string>; steps: Step[] }>;
}

const doc = await readFile(join(repoRoot, "docs", "ci.md"), "utf8");
const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const workflow = parse(blocks[0]!) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
/** The steps of the "until it is published" alternative (a fragment of a steps list). */
const altSteps = parse(blocks[1]!) as Step[];
const runs = [...steps, ...altSteps].flatMap((s) => (s.run === undefined ? [] : [s.run]));

describe("docs/ci.md", () => {
  it("pins b158: a version in the workflow, a full commit sha in the from-the-repository alternative", () => {
    expect(workflow.env.B158_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(steps.filter((s) => /npm install --global "b158@\$\{B158_VERSION\}"/.test(s.run ?? ""))).toHaveLength(1);
    const checkout = altSteps.find((s) => s.uses?.startsWith("actions/checkout@"));
    expect(checkout?.with?.ref).toMatch(/^[0-9a-f]{40}$/);
    // no unpinned use anywhere
    for (const run of runs) expect(run).not.toMatch(/npx (--yes )?b158(?!@)|npm install (--global |-g )?b158(?!@)/);
  });

  it("passes inputs through env:, never into run: text", () => {
    for (const run of runs) expect(run).not.toContain("${{");
    expect(workflow.env.SOURCE).toBe("${{ inputs.source }}");
  });

  it("gives HF_TOKEN (and any secret) to the push step only", () => {
    const withSecrets = steps.filter((s) => JSON.stringify(s).includes("secrets."));
    expect(withSecrets.map((s) => s.run)).toEqual([expect.stringMatching(/^b158 push /)]);
    expect(withSecrets[0]!.env?.HF_TOKEN).toBe("${{ secrets.HF_TOKEN }}");
    expect(JSON.stringify(workflow.env)).not.toContain("HF_TOKEN");
    for (const job of Object.values(workflow.jobs)) expect(JSON.stringify(job.env ?? {})).not.toContain("HF_TOKEN");
  });

  it("uploads the reports with if: always()", () => {
    const upload = steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"));
    expect(upload?.if).toBe("always()");
    expect(upload?.with?.path).toBe("*.json");
  });

  it("keys the cache by the resolved commit, with restore-keys, restored after the commit is known", () => {
    const cacheIndex = steps.findIndex((s) => s.uses?.startsWith("actions/cache@"));
    const cache = steps[cacheIndex]!;
    const [, stepId] = /\$\{\{ steps\.([\w-]+)\.outputs\.commit \}\}$/.exec(cache.with!.key!) ?? [];
    const resolveIndex = steps.findIndex((s) => s.id === stepId);
    expect(resolveIndex, cache.with!.key).toBeGreaterThanOrEqual(0);
    expect(resolveIndex).toBeLessThan(cacheIndex);
    expect(steps[resolveIndex]!.run).toContain('echo "commit=');
    const restore = cache.with!["restore-keys"]!.trim();
    expect(cache.with!.key!.startsWith(restore)).toBe(true);
    expect(restore.length).toBeLessThan(cache.with!.key!.length);
    // and every step after it reads the source at that commit
    const pull = steps.findIndex((s) => s.run?.startsWith("b158 pull "));
    expect(pull).toBeGreaterThan(cacheIndex);
    for (const s of steps.slice(pull).filter((s) => /hf:\/\/|b158 pull/.test(s.run ?? ""))) expect(s.env?.COMMIT, s.name).toBe(`\${{ steps.${stepId}.outputs.commit }}`);
  });

  it("uses only commands and flags b158 has", async () => {
    const uses = runs.join("\n").replace(/\\\n\s*/g, " ").matchAll(/(?:^|[\s;&(])b158 (\w+)([^\n;|>]*)/gm);
    let checked = 0;
    for (const [, command, rest] of uses) {
      const { default: Command } = (await import(`../src/commands/${command}.ts`)) as { default: { flags: Record<string, { char?: string }>; enableJsonFlag?: boolean } };
      const flags = new Set(["help", ...(Command.enableJsonFlag ? ["json"] : []), ...Object.keys(Command.flags)]);
      const chars = new Set(Object.values(Command.flags).flatMap((f) => (f.char === undefined ? [] : [f.char])));
      for (const [, long] of rest!.matchAll(/\s--([\w-]+)/g)) expect(flags.has(long!), `b158 ${command} --${long}`).toBe(true);
      for (const [, short] of rest!.matchAll(/\s-(\w)\b/g)) expect(chars.has(short!), `b158 ${command} -${short}`).toBe(true);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(7);
  });
});

describe("docs/ci.md's resolve step, run against the mock Hub", () => {
  let root: string;
  let hub: MockHub;
  let commit: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "b158-ci-"));
    const fixture = await generateCheckpoint({ family: "bitnet-2b4t-packed", dir: join(root, "src"), dims: { layers: 1 } });
    const files: Record<string, Uint8Array> = {};
    for (const name of fixture.files) files[name] = new Uint8Array(await readFile(join(fixture.dir, name)));
    hub = new MockHub();
    await hub.start();
    commit = hub.addRepo("org/source", files, { refs: ["v1"] });
  });
  afterAll(async () => {
    await hub.close();
    await rm(root, { recursive: true, force: true });
  });

  it("writes commit=<the sha the revision resolves to> to $GITHUB_OUTPUT, without downloading weights", async () => {
    const resolve = steps.find((s) => s.id === "resolve")!;
    const bin = join(root, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "b158"), `#!/bin/sh\nexec "${process.execPath}" "${join(repoRoot, "bin", "run.js")}" "$@"\n`);
    await chmod(join(bin, "b158"), 0o755);
    const output = join(root, "github-output");
    await writeFile(output, "");
    const env = cliEnv({ PATH: `${bin}:${process.env.PATH}`, GITHUB_OUTPUT: output, SOURCE: "org/source", REVISION: "v1", HF_ENDPOINT: hub.url, HF_HOME: join(root, "hf") });
    const run = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile("bash", ["-e", "-c", resolve.run!], { cwd: root, env }, (error, _stdout, stderr) => done({ code: error === null ? 0 : Number(error.code ?? 1), stderr })),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(await readFile(output, "utf8")).toBe(`commit=${commit}\n`);
    expect(hub.log.filter((r) => r.url.endsWith(".safetensors") && r.range === undefined)).toEqual([]);
  });
});
