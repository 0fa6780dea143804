import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchSection } from "./types.js";

/**
 * CLI start-up: the built CLI run as a user runs it, with the oclif manifest the build writes, and
 * from a copy of the package without it (commands found by importing every one), in the same run.
 * CPU milliseconds are the child's own (user + system, reported as it exits); wall time is noisy on
 * a shared machine. BENCH_STARTUP_RUNS (default 7) runs per case; the median is reported.
 */
const repo = fileURLToPath(new URL("..", import.meta.url));
const CPU = fileURLToPath(new URL("./cpu-at-exit.mjs", import.meta.url));
const CASES: readonly (readonly string[])[] = [["--version"], ["help"], ["convert", "--help"], ["inspect", "fixtures/example", "--json"]];

function once(root: string, args: readonly string[]): Promise<{ cpuMs: number; wallMs: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", CPU, join(root, "bin", "run.js"), ...args], { cwd: repo, maxBuffer: 1 << 24 }, (error, _stdout, stderr) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const cpu = /b158-bench-cpu-us (\d+)/.exec(stderr);
      if (error !== null || cpu === null) reject(error ?? new Error(`no CPU figure: ${stderr.slice(-500)}`));
      else resolve({ cpuMs: Number(cpu[1]) / 1000, wallMs });
    });
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

/** The package as installed, minus oclif.manifest.json: bin/run.js and package.json copied, the rest linked. */
async function withoutManifest(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "b158-startup-"));
  await mkdir(join(root, "bin"));
  await copyFile(join(repo, "bin", "run.js"), join(root, "bin", "run.js"));
  await copyFile(join(repo, "package.json"), join(root, "package.json"));
  for (const dir of ["dist", "node_modules", "schemas"]) await symlink(join(repo, dir), join(root, dir), "dir");
  return root;
}

export const startup: BenchSection = {
  name: "startup",
  description: "CLI start-up with and without the oclif manifest (median CPU and wall ms of the child)",
  async run() {
    const runs = Number(process.env.BENCH_STARTUP_RUNS ?? 7);
    const bare = await withoutManifest();
    const rows: Record<string, unknown>[] = [];
    try {
      for (const args of CASES) {
        const timings = { manifest: { cpu: [] as number[], wall: [] as number[] }, none: { cpu: [] as number[], wall: [] as number[] } };
        // interleaved, so load on the machine hits both alike
        for (let i = 0; i < runs; i++) {
          for (const [key, root] of [["manifest", repo], ["none", bare]] as const) {
            const t = await once(root, args);
            timings[key].cpu.push(t.cpuMs);
            timings[key].wall.push(t.wallMs);
          }
        }
        const cpuWith = median(timings.manifest.cpu);
        const cpuWithout = median(timings.none.cpu);
        rows.push({
          command: `b158 ${args.join(" ")}`,
          cpuMsManifest: cpuWith,
          cpuMsNoManifest: cpuWithout,
          cpuRatio: cpuWith / cpuWithout,
          wallMsManifest: median(timings.manifest.wall),
          wallMsNoManifest: median(timings.none.wall),
        });
      }
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
    return rows;
  },
};
