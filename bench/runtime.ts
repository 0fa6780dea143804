import { execFile } from "node:child_process";
import { access, mkdir, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { coresAvailable } from "./kernels.js";
import { bitnet2B4T, ensureModel, ensureTokenizer } from "./models.js";
import type { BenchSection } from "./types.js";

/**
 * The runtime at real size (issue #13), side by side in one run on the 2B-4T-shaped model:
 * - `eval` of BENCH_RUNTIME_EVAL tokens (64): the bf16 latent source (absmean at load) against its
 *   i2_s conversion, both sides in one process;
 * - `run` on an i2_s .b158 whose embedding (the tied head) is f16: a BENCH_RUNTIME_PROMPT-token
 *   prompt (64), then BENCH_RUNTIME_GENERATE tokens (32) greedily, with BENCH_THREADS threads (2),
 *   on each backend of BENCH_RUNTIME_BACKENDS (wasm-simd128,wasm-relaxed); then the int8 head
 *   option (reported separately);
 * - llama.cpp (node-llama-cpp, same threads, flash attention off) on b158's TQ2_0 GGUF of the same
 *   weights with f16 token_embd/output: the same head precision as the .b158.
 * The machine is shared: every round runs llama.cpp, then ours, then llama.cpp again, and each of
 * our figures is divided by the faster of the two llama.cpp runs around it (BENCH_RUNTIME_ROUNDS
 * rounds, 2). Each run is its own process: wall and CPU seconds, peak RSS, tokens/s, the load
 * average when it started. A round starts once the load average is below the core count plus one
 * (waiting at most BENCH_RUNTIME_WAIT seconds, 300); runtimeVerdicts says which rounds it judges.
 * BENCH_RUNTIME_LAYERS (30) shortens the model for narrowed runs.
 */
const ROOT = join(process.env.B158_BENCH_DIR ?? tmpdir(), "b158-bench");
const CONVERT = fileURLToPath(new URL("./convert-child.mjs", import.meta.url));
const EXPORT = fileURLToPath(new URL("./export-child.mjs", import.meta.url));
const CHILD = fileURLToPath(new URL("./runtime-child.mjs", import.meta.url));

const env = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
};

interface Child {
  wallSeconds: number;
  cpuSeconds: number;
  peakRssBytes: number;
  load: number;
  [key: string]: unknown;
}

function child(script: string, args: string[]): Promise<Child> {
  const load = loadavg()[0]!;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(" ")}: ${stderr || error.message}`));
      else resolve({ ...(JSON.parse(stdout.trim().split("\n").at(-1)!) as Child), load });
    });
  });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

const speed = (r: Child) => ({
  promptTokS: (r.promptTokens as number) / (r.promptSeconds as number),
  genTokS: (r.generatedTokens as number) / (r.generationSeconds as number),
});

export const runtime: BenchSection = {
  name: "runtime",
  description: "b158 eval (bf16 latent source vs i2_s) and b158 run (i2_s, f16 head) against llama.cpp on TQ2_0 (f16 head), one process each",
  async run() {
    const layers = env("BENCH_RUNTIME_LAYERS", 30);
    const evalTokens = env("BENCH_RUNTIME_EVAL", 64);
    const prompt = env("BENCH_RUNTIME_PROMPT", 64);
    const generate = env("BENCH_RUNTIME_GENERATE", 32);
    const threads = env("BENCH_THREADS", 2);
    const rounds = env("BENCH_RUNTIME_ROUNDS", 2);
    const backends = (process.env.BENCH_RUNTIME_BACKENDS ?? "wasm-simd128,wasm-relaxed").split(",");
    await mkdir(ROOT, { recursive: true });
    const model = bitnet2B4T(false, layers);
    const { dir } = await ensureModel(model, join(ROOT, model.id));
    const i2s = join(ROOT, `${model.id}-runtime-i2_s.b158`);
    const i2sF16 = join(ROOT, `${model.id}-runtime-i2_s-f16.b158`);
    const tq2 = join(ROOT, `${model.id}-runtime-tq2_0.b158`);
    const gguf = join(ROOT, `${model.id}-runtime-tq2_0-f16.gguf`);
    // export needs a tokenizer, and the files embed it: made again when it changes
    if (await ensureTokenizer(model, dir)) for (const made of [i2s, i2sF16, tq2, gguf]) await rm(made, { force: true });
    if (!(await exists(i2s))) await child(CONVERT, [dir, i2s, "i2_s", "0"]);
    if (!(await exists(i2sF16))) await child(CONVERT, [dir, i2sF16, "i2_s", "0", "f16"]);
    if (!(await exists(gguf))) {
      if (!(await exists(tq2))) await child(CONVERT, [dir, tq2, "tq2_0", "0"]);
      await child(EXPORT, [tq2, gguf, "f16"]);
    }
    const shape = `${model.id}${layers === 30 ? "" : ` (${layers} layers)`}`;
    const rows: Record<string, unknown>[] = [];
    const evaluated = await child(CHILD, ["eval", dir, i2s, String(evalTokens), String(threads)]);
    rows.push({ step: "eval", model: shape, tokens: evaluated.tokens, wallS: evaluated.wallSeconds, cpuS: evaluated.cpuSeconds, peakRssMiB: evaluated.peakRssBytes / 2 ** 20, pass: evaluated.pass, load: evaluated.load, targetWallS: 30 });

    // how many cores two busy threads get just before llama.cpp starts: below ~1.8, its spinning threads collapse
    const llama = async () => {
      const cores = await coresAvailable();
      return { ...(await child(CHILD, ["llama", gguf, String(prompt), String(generate), String(threads)])), cores };
    };
    const row = (step: string, r: Child, round: number, around: [Child, Child] | undefined) => {
      const s = speed(r);
      const reference = around === undefined ? undefined : around.map(speed);
      // the faster of the two: a llama.cpp run slowed by the load never flatters the ratio
      const best = (key: "promptTokS" | "genTokS") => (reference === undefined ? undefined : Math.max(reference[0]![key], reference[1]![key]));
      const tokens = (r.promptTokens as number) + (r.generatedTokens as number);
      return {
        step,
        round,
        model: shape,
        threads: r.threads,
        backend: r.backend ?? "llama.cpp",
        loadS: r.loadSeconds,
        promptTokS: s.promptTokS,
        genTokS: s.genTokS,
        coresForLlama: r.cores ?? (around === undefined ? undefined : around[speed(around[0]!).genTokS >= speed(around[1]!).genTokS ? 0 : 1]!.cores),
        llamaPromptTokS: best("promptTokS"),
        llamaGenTokS: best("genTokS"),
        promptVsLlama: around === undefined ? undefined : s.promptTokS / best("promptTokS")!,
        genVsLlama: around === undefined ? undefined : s.genTokS / best("genTokS")!,
        cpuMsPerToken: ((r.runCpuSeconds as number) / tokens) * 1000,
        peakRssMiB: r.peakRssBytes / 2 ** 20,
        weightMiB: r.weightBytes === undefined ? undefined : (r.weightBytes as number) / 2 ** 20,
        load: r.load,
      };
    };
    const waitSeconds = Number(process.env.BENCH_RUNTIME_WAIT ?? 300);
    for (let round = 1; round <= rounds; round++) {
      await quietMachine(waitSeconds);
      const ours: [string, Child][] = [];
      const before = await llama();
      for (const backend of backends) ours.push([`run i2_s, f16 head`, await child(CHILD, ["run", i2sF16, String(prompt), String(generate), String(threads), "f16", backend])]);
      ours.push([`run i2_s, int8 head`, await child(CHILD, ["run", i2sF16, String(prompt), String(generate), String(threads), "int8", backends.at(-1)!])]);
      const after = await llama();
      rows.push(row("llama.cpp tq2_0, f16 head", before, round, undefined));
      for (const [step, r] of ours) rows.push(row(step, r, round, [before, after]));
      rows.push(row("llama.cpp tq2_0, f16 head", after, round, undefined));
    }
    return rows;
  },
};

/** Waits (up to `seconds`) for the load average to drop below the core count plus one, so that a round can be judged. */
async function quietMachine(seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (loadavg()[0]! >= availableParallelism() + 1 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5000));
}

const range = (values: number[]) => (values.length === 0 ? "n/a" : `${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)}`);

/**
 * The issue's targets: eval <= 30 s; run >= 0.6x llama.cpp (SIMD128) and >= 1x (relaxed SIMD); peak RSS <= 1.5 GiB generating.
 * The machine is shared, and llama.cpp's threads spin at every barrier: on oversubscribed cores it
 * slows down far more than b158 does (to 0.3-4 tokens/s generating from 16, measured here), which
 * would make every ratio look met. So each of our runs is compared with the faster llama.cpp run
 * around it, and a round is judged only if two busy threads got at least 1.8 cores just before that
 * run started (coresForLlama) and it reached 80% of the best llama.cpp rate of the whole bench (for
 * prompt and generation alike). Load only ever slows a run down, so a target is
 * met when the best judged round meets it (best against best, as timings take the best
 * repetition); the range over judged rounds is printed too.
 */
export function runtimeVerdicts(rows: readonly Record<string, unknown>[], cores = availableParallelism()): string[] {
  const lines: string[] = [];
  const evalRow = rows.find((r) => r.step === "eval");
  if (evalRow !== undefined) lines.push(`eval of ${evalRow.tokens} tokens: ${(evalRow.wallS as number).toFixed(1)} s wall, ${(evalRow.cpuS as number).toFixed(1)} CPU-s (target <= 30 s wall; load average ${(evalRow.load as number).toFixed(1)} on ${cores} cores): ${(evalRow.wallS as number) <= 30 ? "met" : "MISSED"}`);
  const llama = rows.filter((r) => r.backend === "llama.cpp");
  const bestLlama = (key: string) => Math.max(0, ...llama.map((r) => r[key] as number));
  const judged = (r: Record<string, unknown>) =>
    (r.coresForLlama as number) >= 1.8 && (r.llamaPromptTokS as number) >= 0.8 * bestLlama("promptTokS") && (r.llamaGenTokS as number) >= 0.8 * bestLlama("genTokS");
  if (llama.length > 0) lines.push(`llama.cpp's best: prompt ${bestLlama("promptTokS").toFixed(1)} tokens/s, generation ${bestLlama("genTokS").toFixed(1)} tokens/s`);
  for (const [backend, target] of [["wasm-simd128", 0.6], ["wasm-relaxed", 1]] as const) {
    const all = rows.filter((r) => r.step === "run i2_s, f16 head" && r.backend === backend);
    if (all.length === 0) continue;
    const runs = all.filter(judged);
    if (runs.length === 0) {
      lines.push(`run ${backend} vs llama.cpp (f16 heads): not judged, llama.cpp ran slowed down around every round (load average ${range(all.map((r) => r.load as number))} on ${cores} cores); rerun when the machine is quiet`);
      continue;
    }
    const prompt = runs.map((r) => r.promptVsLlama as number);
    const gen = runs.map((r) => r.genVsLlama as number);
    const met = Math.max(...prompt) >= target && Math.max(...gen) >= target;
    const ours = (key: string) => `${Math.max(...runs.map((r) => r[key] as number)).toFixed(1)}`;
    lines.push(`run ${backend} vs llama.cpp (f16 heads): prompt ${range(prompt)}x (best ${ours("promptTokS")} tokens/s), generation ${range(gen)}x (best ${ours("genTokS")} tokens/s) over ${runs.length} judged round(s) of ${all.length}, load average ${range(runs.map((r) => r.load as number))} (target >= ${target}x): ${met ? "met" : "MISSED"}`);
  }
  const int8 = rows.filter((r) => r.step === "run i2_s, int8 head" && judged(r));
  if (int8.length > 0) lines.push(`int8 head option (not a like-for-like comparison): prompt ${range(int8.map((r) => r.promptVsLlama as number))}x, generation ${range(int8.map((r) => r.genVsLlama as number))}x`);
  const f16 = rows.filter((r) => r.step === "run i2_s, f16 head");
  if (f16.length > 0) {
    const rss = Math.max(...f16.map((r) => r.peakRssMiB as number));
    lines.push(`peak RSS generating (f16 head): at most ${rss.toFixed(0)} MiB (target <= 1536 MiB): ${rss <= 1536 ? "met" : "MISSED"}`);
  }
  return lines;
}
