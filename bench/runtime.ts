import { execFile } from "node:child_process";
import { access, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { llama3TokenizerJson } from "../fixtures/lib/tokenizers.js";
import { bitnet2B4T, ensureModel } from "./models.js";
import type { BenchSection } from "./types.js";

/**
 * The runtime at real size (issue #13), side by side in one run on the 2B-4T-shaped model:
 * - `eval` of BENCH_RUNTIME_EVAL tokens (64): the bf16 latent source (absmean at load) against its
 *   i2_s conversion, both sides in one process;
 * - `run` on the i2_s .b158: a BENCH_RUNTIME_PROMPT-token prompt (64), then BENCH_RUNTIME_GENERATE
 *   tokens (32) greedily, with BENCH_THREADS threads (2); the same with the int8 output head (an
 *   option, reported separately);
 * - llama.cpp (node-llama-cpp, same threads, flash attention off) on b158's TQ2_0 GGUF of the same
 *   weights, bf16 embeddings: the same output-head precision as the .b158.
 * Each in its own process: wall and CPU seconds, peak RSS, tokens/s and the ratios to llama.cpp.
 * BENCH_RUNTIME_LAYERS (30) shortens the model for narrowed runs (same shapes, fewer layers).
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
  [key: string]: unknown;
}

function child(script: string, args: string[]): Promise<Child> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(" ")}: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as Child);
    });
  });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

export const runtime: BenchSection = {
  name: "runtime",
  description: "b158 eval (bf16 latent source vs i2_s) and b158 run (i2_s) against llama.cpp on TQ2_0, one process each",
  async run() {
    const layers = env("BENCH_RUNTIME_LAYERS", 30);
    const evalTokens = env("BENCH_RUNTIME_EVAL", 64);
    const prompt = env("BENCH_RUNTIME_PROMPT", 64);
    const generate = env("BENCH_RUNTIME_GENERATE", 32);
    const threads = env("BENCH_THREADS", 2);
    await mkdir(ROOT, { recursive: true });
    const model = bitnet2B4T(false, layers);
    const { dir } = await ensureModel(model, join(ROOT, model.id));
    // export needs a tokenizer: a Llama-3-style one of the real vocabulary size
    const tokenizer = join(dir, "tokenizer.json");
    if (!(await exists(tokenizer))) await writeFile(tokenizer, JSON.stringify(llama3TokenizerJson(model.config.vocab_size as number).json));
    const i2s = join(ROOT, `${model.id}-runtime-i2_s.b158`);
    const tq2 = join(ROOT, `${model.id}-runtime-tq2_0.b158`);
    const gguf = join(ROOT, `${model.id}-runtime-tq2_0-bf16.gguf`);
    if (!(await exists(i2s))) await child(CONVERT, [dir, i2s, "i2_s", "0"]);
    if (!(await exists(gguf))) {
      await child(CONVERT, [dir, tq2, "tq2_0", "0"]);
      await child(EXPORT, [tq2, gguf, "bf16"]);
    }
    const shape = `${model.id}${layers === 30 ? "" : ` (${layers} layers)`}`;
    const rows: Record<string, unknown>[] = [];
    const evaluated = await child(CHILD, ["eval", dir, i2s, String(evalTokens), String(threads)]);
    rows.push({ step: "eval", model: shape, tokens: evaluated.tokens, wallS: evaluated.wallSeconds, cpuS: evaluated.cpuSeconds, peakRssMiB: evaluated.peakRssBytes / 2 ** 20, pass: evaluated.pass, targetWallS: 30 });

    const speed = (r: Child) => ({
      promptTokS: (r.promptTokens as number) / (r.promptSeconds as number),
      genTokS: (r.generatedTokens as number) / (r.generationSeconds as number),
    });
    const llama = await child(CHILD, ["llama", gguf, String(prompt), String(generate), String(threads)]);
    const reference = speed(llama);
    const runRow = (name: string, r: Child) => {
      const s = speed(r);
      return {
        step: name,
        model: shape,
        threads: r.threads,
        backend: r.backend ?? "llama.cpp",
        loadS: r.loadSeconds,
        promptTokS: s.promptTokS,
        genTokS: s.genTokS,
        promptVsLlama: s.promptTokS / reference.promptTokS,
        genVsLlama: s.genTokS / reference.genTokS,
        runCpuS: r.runCpuSeconds,
        peakRssMiB: r.peakRssBytes / 2 ** 20,
        weightMiB: r.weightBytes === undefined ? undefined : (r.weightBytes as number) / 2 ** 20,
      };
    };
    rows.push(runRow("run i2_s", await child(CHILD, ["run", i2s, String(prompt), String(generate), String(threads), "f"])));
    rows.push(runRow("run i2_s, int8 head", await child(CHILD, ["run", i2s, String(prompt), String(generate), String(threads), "int8"])));
    rows.push(runRow("llama.cpp tq2_0", llama));
    return rows;
  },
};

/** The issue's targets, one line each: eval <= 30 s, run >= 0.6x llama.cpp (portable SIMD), peak RSS <= 1.5 GiB generating. */
export function runtimeVerdicts(rows: readonly Record<string, unknown>[]): string[] {
  const lines: string[] = [];
  const evalRow = rows.find((r) => r.step === "eval");
  if (evalRow !== undefined) lines.push(`eval of ${evalRow.tokens} tokens: ${(evalRow.wallS as number).toFixed(1)} s wall (target <= 30 s): ${(evalRow.wallS as number) <= 30 ? "met" : "MISSED"}`);
  const run = rows.find((r) => r.step === "run i2_s");
  if (run !== undefined) {
    const ratio = (key: string) => (run[key] as number).toFixed(2);
    lines.push(`run i2_s vs llama.cpp: prompt ${ratio("promptVsLlama")}x, generation ${ratio("genVsLlama")}x (targets >= 0.6x portable, >= 1x relaxed SIMD) on backend ${run.backend}`);
    const rss = run.peakRssMiB as number;
    lines.push(`peak RSS generating: ${rss.toFixed(0)} MiB (target <= 1536 MiB): ${rss <= 1536 ? "met" : "MISSED"}`);
  }
  return lines;
}
