import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the CLI as a user runs it is its built bin/run.js (npm test builds dist/ first). */
export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(REPO, "bin", "run.js");

export interface CliRun {
  /** The exit status, or -1 when the child was killed (by a signal or the timeout). */
  readonly status: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Node flags for the child, e.g. a heap cap. */
  readonly nodeArgs?: readonly string[];
  readonly maxBuffer?: number;
}

/** Runs `b158 <args>` in a child process; DEBUG is removed (oclif prints stacks on purpose under it). */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const { DEBUG: _debug, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...(options.nodeArgs ?? []), CLI, ...args],
      { cwd: REPO, env: { ...env, NO_COLOR: "1", ...options.env }, timeout: options.timeoutMs ?? 60_000, maxBuffer: options.maxBuffer ?? 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ status, signal: error?.signal ?? null, stdout, stderr });
      },
    );
  });
}
