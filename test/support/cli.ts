import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const binRun = join(repoRoot, "bin", "run.js");

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The built CLI (bin/run.js) in a child process, with `env` added to a copy of this process's
 * environment without any HF_* variable of the machine's own (so a developer's token or cache
 * never leaks into a test).
 */
export function cliEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  for (const key of Object.keys(childEnv)) if (/^(HF_|HUGGING_FACE_|HUGGINGFACE_)/.test(key)) delete childEnv[key];
  return { ...childEnv, ...env };
}

export function b158(args: readonly string[], env: Record<string, string> = {}, cwd = repoRoot): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [binRun, ...args], { cwd, env: cliEnv(env), maxBuffer: 1 << 26 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }),
    );
  });
}

export function spawnB158(args: readonly string[], env: Record<string, string> = {}, cwd = repoRoot): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [binRun, ...args], { cwd, env: cliEnv(env) });
}
