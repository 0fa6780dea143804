import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, EXIT, type ErrorCode } from "../../src/errors.js";
import { buildSafetensors, checkpointFiles, tempCheckpoint, type TempFile } from "../support/build-safetensors.js";

/** The CLI as a user runs it: the built bin/run.js (npm test builds dist/ first) in a child process. */
const repo = fileURLToPath(new URL("../..", import.meta.url));

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

function b158(args: readonly string[]): Promise<Run> {
  // DEBUG would make oclif print stacks on purpose; a user's plain run must not.
  const { DEBUG: _debug, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin", "run.js"), ...args], { cwd: repo, env: { ...env, NO_COLOR: "1" }, timeout: 30_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ status, stdout, stderr });
    });
  });
}

const CASES: [rule: string, files: Record<string, TempFile>, code: ErrorCode][] = [
  ["header is not JSON", { "model.safetensors": buildSafetensors({ header: "{abc}" }) }, "E_SAFETENSORS_HEADER_JSON"],
  ["index names a missing shard", checkpointFiles({ shards: { "model-00001-of-00002.safetensors": [{ name: "a" }] }, index: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }), "E_INDEX_MISSING_SHARD"],
];
/** Under --json: the error object on stdout. */
const JSON_CASE: [files: Record<string, TempFile>, code: ErrorCode, file: string] = [
  { "model.safetensors": buildSafetensors({ header: "{}", headerLength: 2n ** 63n }) },
  "E_SAFETENSORS_HEADER_SIZE",
  "model.safetensors",
];

const cleanups: (() => Promise<void>)[] = [];
const runs = new Map<string, Run>();
let jsonRun: Run;
beforeAll(async () => {
  const dirs: string[] = [];
  for (const files of [JSON_CASE[0], ...CASES.map(([, f]) => f)]) {
    const { dir, cleanup } = await tempCheckpoint(files);
    dirs.push(dir);
    cleanups.push(cleanup);
  }
  // All runs at once: each is a cold Node + oclif start.
  const [json, ...plain] = await Promise.all([b158(["inspect", dirs[0]!, "--json"]), ...dirs.slice(1).map((dir) => b158(["inspect", dir]))]);
  jsonRun = json!;
  CASES.forEach(([rule], i) => runs.set(rule, plain[i]!));
});
afterAll(async () => {
  await Promise.all(cleanups.map((cleanup) => cleanup()));
});

describe("b158 inspect on malformed input: a coded user error, never a crash", () => {
  it("the CLI is built", () => {
    expect(existsSync(join(repo, "dist", "commands", "inspect.js")), "run `npx tsc -p tsconfig.build.json` first").toBe(true);
  });

  it.each(CASES.map(([rule, , code]) => [rule, code] as const))("%s: exit status 3 and %s on stderr, no stack trace", (rule, code) => {
    const run = runs.get(rule)!;
    expect(EXIT[ERROR_CODES[code].exit]).toBe(3);
    expect(run.status, run.stderr).toBe(3);
    expect(run.stderr).toContain(code);
    expect(run.stderr).not.toContain("    at ");
    expect(run.stdout).toBe("");
  });

  it("--json reports the same code and names the file on stdout, with no stack", () => {
    const [, code, file] = JSON_CASE;
    expect(jsonRun.status, jsonRun.stderr).toBe(3);
    const report = JSON.parse(jsonRun.stdout) as { error: { code: string; message: string; exit: number; stack?: unknown } };
    expect(report.error.code).toBe(code);
    expect(report.error.exit).toBe(3);
    expect(report.error.message).toContain(file);
    expect(report.error.stack).toBeUndefined();
    expect(jsonRun.stdout + jsonRun.stderr).not.toContain("    at ");
  });
});
