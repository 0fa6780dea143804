import { execFile } from "node:child_process";
import { mkdir, open, rm, stat } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LAYOUT_IDS } from "../src/pack/layouts.js";
import { bitnet2B4T, bitnetLarge, ensureModel, linearWeights, type BenchModel } from "./models.js";
import type { BenchSection } from "./types.js";

/**
 * Conversions at real model sizes (issue #7): wall and CPU seconds, peak RSS, bytes in and out,
 * weights per second, each against this machine's I/O floor (reading the input warm plus writing an
 * output of the same size), and thread scaling. Each conversion runs in its own process.
 * For quick iterations BENCH_MODELS and BENCH_LAYOUTS (comma lists of model ids and layouts) narrow
 * the run; unset, everything runs.
 */
const ROOT = join(process.env.B158_BENCH_DIR ?? tmpdir(), "b158-bench");
const CHILD = fileURLToPath(new URL("./convert-child.mjs", import.meta.url));
const CHUNK = 8 * 1024 * 1024;

interface ChildResult {
  wallSeconds: number;
  cpuSeconds: number;
  peakRssBytes: number;
  outputBytes: number;
  threads: number;
}

interface Run {
  readonly layout: string;
  readonly threads: number;
  readonly oneCore: boolean;
  readonly repeats: number;
}

const SCALING_REPEATS = 5;

/** The run with the median wall time. */
function median(results: readonly ChildResult[]): ChildResult {
  return [...results].sort((a, b) => a.wallSeconds - b.wallSeconds)[Math.floor(results.length / 2)]!;
}

/** `oneCore`: pinned to CPU 0 with taskset, so the main thread and libuv share the worker's core. */
function convert(source: string, output: string, layout: string, threads: number, oneCore = false): Promise<ChildResult> {
  const [command, args] = oneCore ? ["taskset", ["-c", "0", process.execPath]] : [process.execPath, []];
  return new Promise((resolve, reject) => {
    execFile(command, [...args, CHILD, source, output, layout, String(threads)], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${layout} conversion failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout) as ChildResult);
    });
  });
}

/** Seconds to read a file sequentially (run after a first read, so the page cache is warm). */
async function readSeconds(path: string): Promise<number> {
  const handle = await open(path, "r");
  const buffer = new Uint8Array(CHUNK);
  try {
    const started = process.hrtime.bigint();
    for (let position = 0; ; position += CHUNK) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, position);
      if (bytesRead === 0) break;
    }
    return Number(process.hrtime.bigint() - started) / 1e9;
  } finally {
    await handle.close();
  }
}

/** Write throughput (bytes/s) with fsync, as the converter writes. */
async function writeRate(bytes: number): Promise<number> {
  const path = join(ROOT, "floor.bin");
  const handle = await open(path, "w");
  const buffer = new Uint8Array(CHUNK).fill(7);
  try {
    const started = process.hrtime.bigint();
    for (let position = 0; position < bytes; position += CHUNK) await handle.write(buffer, 0, Math.min(CHUNK, bytes - position), position);
    await handle.sync();
    return bytes / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await handle.close();
    await rm(path, { force: true });
  }
}

export const conversion: BenchSection = {
  name: "conversion",
  description: `real-size synthetic checkpoints, every layout, ${availableParallelism()} workers unless noted; floor = warm read of the input + fsync'd write of the output; the thread-scaling pair is the median of ${SCALING_REPEATS} runs each (wallRunsS)`,
  async run() {
    const rows: Record<string, unknown>[] = [];
    await mkdir(ROOT, { recursive: true });
    const models: BenchModel[] = [bitnetLarge(), bitnet2B4T(false), bitnet2B4T(true)].filter((m) => selected("BENCH_MODELS", m.id));
    const rate = await writeRate(1 << 30);
    const cores = availableParallelism();
    for (const model of models) {
      const { dir, bytes, generatedSeconds } = await ensureModel(model, join(ROOT, model.id));
      if (generatedSeconds !== null) console.log(`generated ${model.id}: ${(bytes / 1e9).toFixed(2)} GB in ${generatedSeconds.toFixed(1)} s`);
      const weightsFile = join(dir, "model.safetensors");
      await readSeconds(weightsFile); // warm the page cache
      const readFloor = await readSeconds(weightsFile);
      const weights = linearWeights(model);
      // thread scaling: all workers and 1 worker, each the median of SCALING_REPEATS runs taken in turn
      // (this machine's wall times wander by 10% or more); 1 worker pinned to 1 core for information
      const scaling = model.id === "bitnet-b1.58-2B-4T-bf16" && selected("BENCH_LAYOUTS", "tq2_0");
      const runs: Run[] = LAYOUT_IDS.filter((l) => selected("BENCH_LAYOUTS", l)).map((layout) => ({ layout, threads: cores, oneCore: false, repeats: scaling && layout === "tq2_0" ? SCALING_REPEATS : 1 }));
      if (scaling) {
        runs.push({ layout: "tq2_0", threads: 1, oneCore: false, repeats: SCALING_REPEATS });
        if (await hasTaskset()) runs.push({ layout: "tq2_0", threads: 1, oneCore: true, repeats: 1 });
      }
      const results = new Map<Run, ChildResult[]>(runs.map((r) => [r, []]));
      for (let round = 0; round < Math.max(...runs.map((r) => r.repeats)); round++) {
        for (const run of runs) {
          if (round >= run.repeats) continue;
          const output = join(ROOT, `${model.id}-${run.layout}.b158`);
          results.get(run)!.push(await convert(dir, output, run.layout, run.threads, run.oneCore));
          await rm(output, { force: true });
        }
      }
      for (const run of runs) {
        const { layout, oneCore } = run;
        const all = results.get(run)!;
        const result = median(all);
        const floor = readFloor + result.outputBytes / rate;
        rows.push({
          model: model.id,
          layout,
          threads: result.threads,
          cores: oneCore ? 1 : cores,
          wallS: result.wallSeconds,
          cpuS: result.cpuSeconds,
          peakRssMiB: result.peakRssBytes / 2 ** 20,
          inGB: bytes / 1e9,
          outGB: result.outputBytes / 1e9,
          weightsPerSecond: weights / result.wallSeconds,
          floorS: floor,
          xFloor: result.wallSeconds / floor,
          ...(all.length > 1 ? { wallRunsS: all.map((r) => r.wallSeconds.toFixed(2)).join(" / ") } : {}),
        });
      }
    }
    return rows;
  },
};

function hasTaskset(): Promise<boolean> {
  return new Promise((resolve) => execFile("taskset", ["-c", "0", "true"], (error) => resolve(error === null)));
}

/** Whether `value` is in the comma list in env var `name` (everything is when it is unset). */
function selected(name: string, value: string): boolean {
  const list = process.env[name];
  return list === undefined || list === "" || list.split(",").map((v) => v.trim()).includes(value);
}

/** The targets, checked on the rows. */
export function conversionVerdicts(rows: Record<string, unknown>[]): string[] {
  const find = (model: string, layout: string, threads?: number, cores?: number) =>
    rows.find((r) => r.model === model && r.layout === layout && (threads === undefined ? r.threads !== 1 : r.threads === threads) && (cores === undefined || r.cores === cores));
  const verdicts: string[] = [];
  for (const layout of ["i2_s", "tq2_0"]) {
    const r = find("bitnet-b1.58-2B-4T-bf16", layout);
    if (r) verdicts.push(`2B-4T-bf16 -> ${layout}: ${(r.xFloor as number).toFixed(2)}x the I/O floor (target <= 2): ${(r.xFloor as number) <= 2 ? "met" : "NOT met"}`);
  }
  const maxRss = Math.max(...rows.map((r) => r.peakRssMiB as number));
  verdicts.push(`peak RSS max ${maxRss.toFixed(0)} MiB (target <= 1024): ${maxRss <= 1024 ? "met" : "NOT met"}`);
  const large = Math.max(...rows.filter((r) => r.model === "bitnet_b1_58-large").map((r) => r.peakRssMiB as number));
  const twoB = Math.max(...rows.filter((r) => r.model === "bitnet-b1.58-2B-4T-bf16").map((r) => r.peakRssMiB as number));
  // a run narrowed by BENCH_MODELS may lack one of the two
  if (Number.isFinite(large) && Number.isFinite(twoB)) verdicts.push(`peak RSS 0.7B ${large.toFixed(0)} MiB vs 2.4B ${twoB.toFixed(0)} MiB (memory must not grow with model size)`);
  const all = find("bitnet-b1.58-2B-4T-bf16", "tq2_0");
  const one = find("bitnet-b1.58-2B-4T-bf16", "tq2_0", 1, all?.cores as number | undefined);
  if (one && all) {
    const speedup = (one.wallS as number) / (all.wallS as number);
    verdicts.push(`thread scaling 1 -> ${all.threads} workers: ${speedup.toFixed(2)}x (target >= 1.7): ${speedup >= 1.7 ? "met" : "NOT met"}`);
  }
  const oneCore = find("bitnet-b1.58-2B-4T-bf16", "tq2_0", 1, 1);
  if (oneCore && all) {
    const speedup = (oneCore.wallS as number) / (all.wallS as number);
    verdicts.push(`core scaling 1 core (1 worker, taskset) -> ${all.cores} cores: ${speedup.toFixed(2)}x (information)`);
  }
  const packed = find("bitnet-b1.58-2B-4T", "tq2_0");
  if (packed && all) verdicts.push(`packed 2B-4T ${(packed.wallS as number).toFixed(2)} s vs latent ${(all.wallS as number).toFixed(2)} s (packed faster: ${(packed.wallS as number) < (all.wallS as number) ? "met" : "NOT met"})`);
  return verdicts;
}

export async function fileBytes(path: string): Promise<number> {
  return (await stat(path)).size;
}
