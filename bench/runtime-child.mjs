// One runtime measurement in its own process (compiled library): `eval`, `run` (b158's runtime) or
// `llama` (node-llama-cpp on a GGUF), with wall and CPU seconds and peak RSS (child-report.mjs).
import { evaluate, loadModel } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [mode, ...args] = process.argv.slice(2);
const started = process.hrtime.bigint();
const seconds = (from) => Number(process.hrtime.bigint() - from) / 1e9;
const cpu = () => {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
};
/** Deterministic token ids below `vocab` (the synthetic model has no meaningful text). */
const tokens = (n, vocab) => Array.from({ length: n }, (_, i) => (i * 7919 + 11) % vocab);

if (mode === "eval") {
  const [source, converted, count, threads] = args;
  const report = await evaluate(source, converted, { tokens: tokens(Number(count), 128000), threads: Number(threads) });
  const c = report.comparisons[0];
  reportUsage(started, { tokens: report.tokens.length, pass: report.pass, minCosine: c.summary.minCosine, top1: c.summary.top1Agreement });
} else if (mode === "run") {
  const [file, prompt, generate, threads, head, backend] = args;
  const loadStarted = process.hrtime.bigint();
  const model = await loadModel(file, { threads: Number(threads), contextLength: Number(prompt) + Number(generate), int8Head: head === "int8", backend: backend ?? "auto" });
  const loadSeconds = seconds(loadStarted);
  const cpuBefore = cpu();
  const generation = model.generate(tokens(Number(prompt), 128000), { maxTokens: Number(generate), stopAtEos: false });
  for await (const _ of generation);
  const s = generation.stats;
  reportUsage(started, {
    loadSeconds,
    backend: model.kernels.backend,
    threads: model.kernels.threads,
    weightBytes: model.weightBytes,
    promptTokens: s.promptTokens.length,
    promptSeconds: s.promptSeconds,
    generatedTokens: s.tokens.length,
    generationSeconds: s.generationSeconds,
    runCpuSeconds: cpu() - cpuBefore,
  });
  await model.close();
} else if (mode === "llama") {
  const [file, prompt, generate, threads] = args;
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false });
  const loadStarted = process.hrtime.bigint();
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: Number(prompt) + Number(generate) + 8, flashAttention: false, threads: Number(threads), batchSize: Number(prompt) });
  const loadSeconds = seconds(loadStarted);
  const sequence = context.getSequence();
  const input = tokens(Number(prompt), 128000);
  const cpuBefore = cpu();
  // the prompt but its last token, then generation from that token: llama.cpp's own split
  const promptStarted = process.hrtime.bigint();
  await sequence.evaluateWithoutGeneratingNewTokens(input.slice(0, -1));
  const promptSeconds = seconds(promptStarted);
  const generationStarted = process.hrtime.bigint();
  let generated = 0;
  for await (const _ of sequence.evaluate(input.slice(-1), { temperature: 0 })) if (++generated >= Number(generate)) break;
  const generationSeconds = seconds(generationStarted);
  reportUsage(started, { loadSeconds, threads: Number(threads), promptTokens: input.length - 1, promptSeconds, generatedTokens: generated, generationSeconds, runCpuSeconds: cpu() - cpuBefore });
  await context.dispose();
  await model.dispose();
} else {
  throw new Error(`unknown mode ${mode}`);
}
