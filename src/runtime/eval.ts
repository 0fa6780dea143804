import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { B158Error } from "../errors.js";
import { isB158File } from "../formats/b158/detect.js";
import { openB158File } from "../formats/b158/read.js";
import { writeNpy } from "../formats/npy/npy.js";
import type { ActivationMode, KernelContext } from "./kernels/api.js";
import { createKernels } from "./kernels/index.js";
import { Model, openModelSource, type LoadOptions } from "./model.js";
import type { ModelSource } from "./sources/source.js";
import type { Pooling } from "./spec.js";
import { loadTokenizer } from "./tokenizer.js";

/**
 * `b158 eval`: the same tokens through the source checkpoint (its framework's semantics) and the
 * converted file (its packed payloads), both in this runtime, and how far apart their logits are:
 * per position, the cosine of the two logit vectors, whether their top-1 tokens agree, and
 * KL(source || converted) of their softmaxes; summarised, the minimum and mean cosine, the top-1
 * agreement rate, the mean KL, and each side's perplexity on the text (positions 0..n-2 predicting
 * tokens 1..n-1). Thresholds (docs/eval.md) decide pass or fail for lossless conversions; for a
 * lossy one (--ternarize of a float model) the figures are reported only, unless thresholds are
 * given explicitly.
 */
export const DEFAULT_EVAL_TEXT =
  "The quick brown fox jumps over the lazy dog. A BitNet b1.58 model stores every weight as -1, 0 or +1 with one scale, " +
  "and a converted file must compute what its source computes: the same next word, with almost the same confidence.";

export interface EvalThresholds {
  /** Lowest cosine of the two logit vectors at any position. */
  readonly minCosine: number;
  /** Embedding models: lowest cosine of the two pooled embeddings of any text. */
  readonly minEmbeddingCosine: number;
  /** Fraction of positions whose top-1 tokens agree. */
  readonly minTop1: number;
  /** Mean KL(source || converted) in nats. */
  readonly maxKl: number;
  /** Largest relative perplexity difference, |ppl_converted / ppl_source - 1|. */
  readonly maxPerplexityDelta: number;
}

/**
 * Defaults for lossless conversions (repacking packed weights, absmean of latent ones). The only
 * differences left are the f16 rounding of TQ block scales (relative <= 4.9e-4) and the int8
 * activation roundings it flips downstream: measured on the fixture models of every family and
 * layout, min cosine >= 0.9997, top-1 agreement 1, mean KL < 1e-5 (docs/eval.md). A wrong scale
 * convention, a mis-ordered layout or the wrong activation give cosines below 0.9.
 */
export const DEFAULT_THRESHOLDS: EvalThresholds = { minCosine: 0.999, minEmbeddingCosine: 0.999, minTop1: 0.9, maxKl: 0.005, maxPerplexityDelta: 0.02 };

/** The metrics of the logits; an embedding model's verdict is its pooled embeddings' (minEmbeddingCosine). */
const LOGIT_METRICS: readonly Metric[] = ["minCosine", "minTop1", "maxKl", "maxPerplexityDelta"];

export interface EvalOptions {
  /** Text, tokenized with the source's tokenizer (else the converted model's), special tokens included. */
  readonly text?: string;
  /** Token ids instead of text. */
  readonly tokens?: readonly number[];
  readonly activations?: ActivationMode;
  /** Explicit thresholds: override the defaults, and apply even to lossy conversions. */
  readonly thresholds?: Partial<EvalThresholds>;
  /** Writes DIR/source.npy and DIR/<side>.npy: float32 [positions, vocab]. */
  readonly logitsOut?: string;
  /** Another converted file (a GGUF b158 wrote) to compare too, as the side "gguf". */
  readonly gguf?: string;
  readonly threads?: number;
  readonly latent?: LoadOptions["latent"];
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: EvalProgress) => void;
}

export interface EvalProgress {
  readonly phase: "load" | "run";
  readonly side: string;
  readonly done: number;
  readonly total: number;
}

export interface PositionMetrics {
  readonly position: number;
  readonly token: number;
  readonly cosine: number;
  readonly kl: number;
  readonly top1Source: number;
  readonly top1Converted: number;
  readonly top1Agree: boolean;
  /** -log p(next token), each side; null at the last position. */
  readonly nllSource: number | null;
  readonly nllConverted: number | null;
}

export type Metric = keyof EvalThresholds;

export interface Check {
  readonly metric: Metric;
  readonly value: number | null;
  readonly threshold: number;
  readonly pass: boolean;
  /** Decides the verdict: every check of a lossless conversion, only explicit ones of a lossy one. */
  readonly enforced: boolean;
}

export interface Comparison {
  readonly side: string;
  readonly file: string;
  readonly kind: string;
  readonly perplexity: number | null;
  /** Embedding models: the cosine of the two pooled embeddings of each text (null otherwise). */
  readonly embeddings: { readonly cosines: readonly number[]; readonly minCosine: number; readonly meanCosine: number } | null;
  readonly summary: {
    readonly minCosine: number;
    readonly meanCosine: number;
    readonly top1Agreement: number;
    readonly meanKl: number;
    readonly maxKl: number;
    readonly perplexityDelta: number | null;
  };
  readonly checks: readonly Check[];
  /** Every enforced check passes. */
  readonly pass: boolean;
  readonly positions: readonly PositionMetrics[];
}

export interface EvalReport {
  readonly source: { readonly file: string; readonly kind: string; readonly perplexity: number | null };
  readonly tokens: readonly number[];
  /**
   * An embedding model (the source pools its hidden states): how, and the texts embedded (the whole
   * text, then each of its sentences); null for a language model.
   */
  readonly embeddings: { readonly pooling: { readonly mode: Pooling; readonly normalize: boolean }; readonly texts: readonly { readonly text: string | null; readonly tokens: readonly number[] }[] } | null;
  readonly text: string | null;
  readonly activations: ActivationMode;
  readonly lossy: boolean;
  readonly thresholds: EvalThresholds;
  readonly comparisons: readonly Comparison[];
  readonly pass: boolean;
  readonly logitsOut: readonly string[];
  readonly seconds: number;
}

export async function evaluate(source: string, converted: string, options: EvalOptions = {}): Promise<EvalReport> {
  const started = process.hrtime.bigint();
  const activations = options.activations ?? "int8";
  // the source is read as the conversion was told to read it: an explicit override, else what
  // `convert --weights` recorded in the .b158, else the checkpoint's own config (the plan decides)
  const latent = options.latent ?? (await recordedSemantics(converted));
  // one kernel context for every side: each side loads into the memory the previous one used
  // (fresh memory is the expensive part of loading a large model), then releases it
  const kernels = await createKernels({ threads: options.threads ?? availableParallelism() });
  try {
    return await evaluateWith(kernels, source, converted, options, activations, latent, started);
  } finally {
    await kernels.close();
  }
}

async function evaluateWith(kernels: KernelContext, source: string, converted: string, options: EvalOptions, activations: ActivationMode, latent: LoadOptions["latent"], started: bigint): Promise<EvalReport> {
  const base: LoadOptions = {
    activations,
    kernels,
    ...(latent === undefined ? {} : { latent }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  // the source first: its tokenizer decides the tokens, and its logits are kept
  let tokens = options.tokens === undefined ? undefined : [...options.tokens];
  let embedded: NonNullable<EvalReport["embeddings"]> | undefined;
  const run = async (side: string, path: string) => {
    const opened = await openModelSource(path, base);
    let model: Model;
    try {
      tokens ??= tokenize(opened, options.text ?? DEFAULT_EVAL_TEXT);
      checkTokens(tokens, opened);
      // an embedding model is judged by its pooled embeddings: of the whole text and of each sentence
      if (embedded === undefined && opened.spec.pooling !== undefined) embedded = { pooling: opened.spec.pooling, texts: embeddingTexts(opened, tokens, options) };
      const onProgress = (p: { done: number; total: number }) => options.onProgress?.({ phase: "load", side, done: p.done, total: p.total });
      model = await Model.load(opened, { ...base, contextLength: tokens.length, onProgress });
    } finally {
      await opened.close();
    }
    try {
      const all = tokens;
      const logits = await model.forward(all, { ...(options.signal === undefined ? {} : { signal: options.signal }), onProgress: (done) => options.onProgress?.({ phase: "run", side, done, total: all.length }) });
      const embeddings: Float32Array[] = [];
      // each side pools as its own file says (a converted file that pools differently fails); the source's way if it does not say
      for (const text of embedded?.texts ?? []) embeddings.push(await model.embed(text.tokens, { pooling: model.spec.pooling ?? embedded!.pooling, ...(options.signal === undefined ? {} : { signal: options.signal }) }));
      return { logits, embeddings, info: model.info, vocab: model.spec.vocabSize, bitnetLinears: model.bitnetLinears };
    } finally {
      await model.close();
      kernels.release();
    }
  };
  const src = await run("source", source);
  const sides: { side: string; path: string }[] = [{ side: "converted", path: converted }, ...(options.gguf === undefined ? [] : [{ side: "gguf", path: options.gguf }])];
  const finalTokens = tokens!;
  const written: string[] = [];
  if (options.logitsOut !== undefined) {
    await mkdir(options.logitsOut, { recursive: true }).catch((cause: unknown) => Promise.reject(new B158Error("E_IO", `${options.logitsOut}: cannot create the directory`, { cause })));
    const path = join(options.logitsOut, "source.npy");
    await writeNpy(path, src.logits, [finalTokens.length, src.vocab]);
    written.push(path);
  }
  const explicit = options.thresholds ?? {};
  const thresholds: EvalThresholds = { ...DEFAULT_THRESHOLDS, ...explicit };
  const comparisons: Comparison[] = [];
  let lossy = false;
  for (const { side, path } of sides) {
    const other = await run(side, path);
    if (other.vocab !== src.vocab) {
      throw new B158Error("E_EVAL_INCOMPATIBLE", `${path}: has a vocabulary of ${other.vocab} tokens; the source ${source} has ${src.vocab}`, {
        details: { source, converted: path },
        hint: "Compare a converted file with the checkpoint it was converted from.",
      });
    }
    // lossy: the file says so (--ternarize), or it is ternary where the source has no BitNet linear
    const sideLossy = other.info.lossy || (src.bitnetLinears === 0 && other.bitnetLinears > 0);
    lossy ||= sideLossy;
    // an embedding model's logits (of its tied head) are reported; its pooled embeddings decide
    const metrics = (Object.keys(thresholds) as Metric[]).filter((m) => (embedded === undefined ? m !== "minEmbeddingCosine" : !LOGIT_METRICS.includes(m) || explicit[m] !== undefined));
    const enforced = new Set(metrics.filter((m) => !sideLossy || explicit[m] !== undefined));
    const comparison = compare(side, path, other.info.kind, finalTokens, src.logits, other.logits, src.vocab, thresholds, enforced);
    comparisons.push(embedded === undefined ? comparison : withEmbeddings(comparison, src.embeddings, other.embeddings, thresholds, enforced));
    if (options.logitsOut !== undefined) {
      const out = join(options.logitsOut, `${side}.npy`);
      await writeNpy(out, other.logits, [finalTokens.length, src.vocab]);
      written.push(out);
    }
  }
  return {
    source: { file: source, kind: src.info.kind, perplexity: perplexity(finalTokens, src.logits, src.vocab) },
    tokens: finalTokens,
    embeddings: embedded ?? null,
    text: options.tokens === undefined ? (options.text ?? DEFAULT_EVAL_TEXT) : null,
    activations,
    lossy,
    thresholds,
    comparisons,
    pass: comparisons.every((c) => c.pass),
    logitsOut: written,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

/**
 * The texts an embedding model is evaluated on: the whole text, then each of its sentences (more
 * vectors to compare than one); with --tokens, those tokens only.
 */
function embeddingTexts(source: ModelSource, tokens: readonly number[], options: EvalOptions): { text: string | null; tokens: number[] }[] {
  const whole = { text: options.tokens === undefined ? (options.text ?? DEFAULT_EVAL_TEXT) : null, tokens: [...tokens] };
  if (whole.text === null) return [whole];
  const sentences = whole.text.split(/(?<=[.!?])\s+/).map((t) => t.trim()).filter((t) => t.length > 0);
  if (sentences.length < 2) return [whole];
  return [whole, ...sentences.map((text) => ({ text, tokens: tokenize(source, text) }))];
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? (na === nb ? 1 : 0) : dot / Math.sqrt(na * nb);
}

/** Adds the pooled embeddings' cosines and their check to a comparison of an embedding model. */
function withEmbeddings(comparison: Comparison, source: readonly Float32Array[], converted: readonly Float32Array[], thresholds: EvalThresholds, enforced: ReadonlySet<Metric>): Comparison {
  const cosines = source.map((s, i) => cosine(s, converted[i]!));
  const minCosine = cosines.reduce((a, b) => Math.min(a, b), Infinity);
  const check: Check = { metric: "minEmbeddingCosine", value: minCosine, threshold: thresholds.minEmbeddingCosine, pass: minCosine >= thresholds.minEmbeddingCosine, enforced: enforced.has("minEmbeddingCosine") };
  const checks = [check, ...comparison.checks];
  return {
    ...comparison,
    embeddings: { cosines, minCosine, meanCosine: cosines.reduce((a, b) => a + b, 0) / cosines.length },
    checks,
    pass: checks.every((c) => c.pass || !c.enforced),
  };
}

function tokenize(source: ModelSource, text: string): number[] {
  const tokenizer = loadTokenizer(source.tokenizerFiles, source.label);
  if (tokenizer === undefined) {
    throw new B158Error("E_TOKENIZER_MISSING", `${source.label}: has no tokenizer to turn the text into tokens`, { hint: "Pass token ids with --tokens 1,2,3." });
  }
  return tokenizer.encode(text);
}

function checkTokens(tokens: readonly number[], source: ModelSource): void {
  if (tokens.length < 2) throw new B158Error("E_USAGE", `eval needs at least 2 tokens (a perplexity needs a next token); got ${tokens.length}`);
  const vocab = source.spec.vocabSize;
  const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
  if (bad !== undefined) throw new B158Error("E_USAGE", `token id ${bad} is outside ${source.label}'s vocabulary (0 .. ${vocab - 1})`, { details: { token: bad } });
}

/** Per-position log-softmax of a logits row, in float64. */
function logSoftmax(row: Float32Array, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const log = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - log;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** exp(mean -log p(token[p + 1] | prefix)), or null with fewer than 2 tokens. */
export function perplexity(tokens: readonly number[], logits: Float32Array, vocab: number): number | null {
  if (tokens.length < 2) return null;
  const lp = new Float64Array(vocab);
  let nll = 0;
  for (let p = 0; p + 1 < tokens.length; p++) {
    logSoftmax(logits.subarray(p * vocab, (p + 1) * vocab), lp);
    nll -= lp[tokens[p + 1]!]!;
  }
  return Math.exp(nll / (tokens.length - 1));
}

/** Compares two [positions, vocab] logit matrices; the `enforced` metrics decide `pass`. */
export function compare(
  side: string,
  file: string,
  kind: string,
  tokens: readonly number[],
  source: Float32Array,
  converted: Float32Array,
  vocab: number,
  thresholds: EvalThresholds,
  enforced: ReadonlySet<Metric>,
): Comparison {
  const a = new Float64Array(vocab);
  const b = new Float64Array(vocab);
  const positions: PositionMetrics[] = [];
  for (let p = 0; p < tokens.length; p++) {
    const x = source.subarray(p * vocab, (p + 1) * vocab);
    const y = converted.subarray(p * vocab, (p + 1) * vocab);
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let i = 0; i < vocab; i++) {
      dot += x[i]! * y[i]!;
      nx += x[i]! * x[i]!;
      ny += y[i]! * y[i]!;
    }
    logSoftmax(x, a);
    logSoftmax(y, b);
    let kl = 0;
    for (let i = 0; i < vocab; i++) kl += Math.exp(a[i]!) * (a[i]! - b[i]!);
    const [top1Source, top1Converted] = [argmax(x), argmax(y)];
    const next = tokens[p + 1];
    positions.push({
      position: p,
      token: tokens[p]!,
      cosine: nx === 0 || ny === 0 ? (nx === ny ? 1 : 0) : dot / Math.sqrt(nx * ny),
      kl: Math.max(0, kl),
      top1Source,
      top1Converted,
      top1Agree: top1Source === top1Converted,
      nllSource: next === undefined ? null : -a[next]!,
      nllConverted: next === undefined ? null : -b[next]!,
    });
  }
  const n = positions.length;
  // exp(mean nll), from the log-softmaxes above (what perplexity() computes, without a second pass)
  const fromNll = (nll: (q: PositionMetrics) => number | null): number | null => {
    if (n < 2) return null;
    let sum = 0;
    for (const q of positions) if (nll(q) !== null) sum += nll(q)!;
    return Math.exp(sum / (n - 1));
  };
  const pplSource = fromNll((q) => q.nllSource);
  const ppl = fromNll((q) => q.nllConverted);
  const summary = {
    minCosine: positions.reduce((min, q) => Math.min(min, q.cosine), Infinity),
    meanCosine: positions.reduce((s, q) => s + q.cosine, 0) / n,
    top1Agreement: positions.filter((q) => q.top1Agree).length / n,
    meanKl: positions.reduce((s, q) => s + q.kl, 0) / n,
    maxKl: positions.reduce((max, q) => Math.max(max, q.kl), -Infinity),
    perplexityDelta: pplSource === null || ppl === null ? null : Math.abs(ppl / pplSource - 1),
  };
  const check = (metric: Metric, value: number | null, pass: boolean): Check => ({ metric, value, threshold: thresholds[metric], pass, enforced: enforced.has(metric) });
  const checks: Check[] = [
    check("minCosine", summary.minCosine, summary.minCosine >= thresholds.minCosine),
    check("minTop1", summary.top1Agreement, summary.top1Agreement >= thresholds.minTop1),
    check("maxKl", summary.meanKl, summary.meanKl <= thresholds.maxKl),
    check("maxPerplexityDelta", summary.perplexityDelta, summary.perplexityDelta === null || summary.perplexityDelta <= thresholds.maxPerplexityDelta),
  ];
  return { side, file, kind, perplexity: ppl, embeddings: null, summary, checks, pass: checks.every((c) => c.pass || !c.enforced), positions };
}

/** The source semantics `convert --weights` recorded in a .b158 (online for latent, stored for quantized). */
async function recordedSemantics(converted: string): Promise<LoadOptions["latent"]> {
  if (!(await isB158File(converted))) return undefined;
  const file = await openB158File(converted);
  try {
    const weights = file.header.provenance.options.weights;
    return weights === "quantized" ? "stored" : weights === "latent" ? "online" : undefined;
  } finally {
    await file.close();
  }
}
