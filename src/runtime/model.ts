import { availableParallelism } from "node:os";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { B158Error } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { layerRoles, ARCHITECTURES, OFFSET_NORM_ROLES, PROJECTION_NORM_ROLES, type LayerRole } from "./architectures.js";
import { isTernarySource, ternaryEmbeddingRows } from "./embedding-rows.js";
import { poolHidden } from "./pooling.js";
import { createKernels } from "./kernels/index.js";
import { ternaryInMemory } from "./kernels/reference.js";
import type { ActivationMode, DenseMatrix, KernelBackend, KernelContext } from "./kernels/api.js";
import { Sampler, type SamplingOptions } from "./sampler.js";
import { openB158Source } from "./sources/b158.js";
import { openCheckpointSource, type LatentSemantics } from "./sources/checkpoint.js";
import { openGgufSource } from "./sources/gguf.js";
import type { LinearWeight, ModelSource, SourceKind, TokenizerFiles } from "./sources/source.js";
import type { Activation, ModelSpec } from "./spec.js";
import { loadTokenizer, TextStream, type Tokenizer } from "./tokenizer.js";
import { Transformer, type EmbeddingRows, type LayerWeights, type ModelWeights, type Projection } from "./transformer.js";

/**
 * The runtime's library API: load a model from a .b158, a GGUF b158 wrote, or a Hugging Face
 * checkpoint (a directory, a .safetensors file or hf://org/name), then `forward` for logits or
 * `generate` for streamed text. Weights stay in the kernels' packed formats; the KV cache holds
 * `contextLength` positions.
 */
export interface LoadOptions {
  /** "int8" (default): BitNet's per-token int8 activation quantization before every ternary linear, as the framework computes; "float": none. */
  readonly activations?: ActivationMode;
  /** Positions the KV cache holds (default: the model's max_position_embeddings, at most 2048). */
  readonly contextLength?: number;
  /** Tokens per forward step (default 64). */
  readonly maxBatch?: number;
  /** Threads for the kernels, the calling thread included (default: every core, os.availableParallelism()). */
  readonly threads?: number;
  readonly backend?: KernelBackend | "auto";
  /** Kernels to load into instead of creating them (the caller closes them). */
  readonly kernels?: KernelContext;
  /** Checkpoint sources: how latent BitNet weights are read (default "online": absmean at load). */
  readonly latent?: LatentSemantics;
  /** The output head as int8 rows with a scale each (an option for speed, never a default). */
  readonly int8Head?: boolean;
  /** A tokenizer already built from this model's files (b158 run tokenizes before it loads): not built twice. */
  readonly tokenizer?: Tokenizer;
  /** Computes this FFN activation instead of the model's (to compare with a runtime that does). */
  readonly activation?: Activation;
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly signal?: AbortSignal;
}

export interface LoadProgress {
  readonly done: number;
  readonly total: number;
  readonly tensor: string;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 64). */
  readonly maxTokens?: number;
  /** Stop at the model's end-of-sequence tokens (default true). */
  readonly stopAtEos?: boolean;
  /** Keep the logits of every prompt position (stats.promptLogits). */
  readonly promptLogits?: boolean;
  readonly signal?: AbortSignal;
}

export interface GeneratedToken {
  readonly token: number;
  /** The text this token completes (may be empty while a character is incomplete). */
  readonly text: string;
}

export interface GenerationStats {
  readonly promptTokens: readonly number[];
  /** The generated tokens (an end-of-sequence token that stopped generation is not among them). */
  readonly tokens: readonly number[];
  readonly text: string;
  readonly promptSeconds: number;
  readonly promptTokensPerSecond: number;
  /** Time from the first generated token's choice to the last. */
  readonly generationSeconds: number;
  readonly generationTokensPerSecond: number;
  readonly stopReason: "eos" | "length";
  readonly promptLogits?: Float32Array;
}

export interface ModelInfo {
  readonly label: string;
  readonly kind: SourceKind;
  readonly lossy: boolean;
}

export async function openModelSource(path: string, options: Pick<LoadOptions, "latent"> = {}): Promise<ModelSource> {
  if (await isB158File(path)) return openB158Source(path);
  if (await isGgufFile(path)) return openGgufSource(path);
  return openCheckpointSource(path, options.latent === undefined ? {} : { latent: options.latent });
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  const source = await openModelSource(path, options);
  try {
    return await Model.load(source, options);
  } finally {
    await source.close();
  }
}

export class Model {
  readonly spec: ModelSpec;
  readonly info: ModelInfo;
  private readonly tokenizerFiles: TokenizerFiles;
  private tokenizerLoaded: { readonly value: Tokenizer | undefined } | undefined;
  readonly activations: ActivationMode;
  /** Linears whose input the framework quantizes (BitNet linears), and those held as packed ternary weights. */
  readonly bitnetLinears: number;
  readonly ternaryLinears: number;
  /** How the kernels hold the output head: its stored float format, or "int8-rows" (int8Head). */
  readonly headFormat: string;
  private readonly transformer: Transformer;
  private readonly lastLogits: Float32Array;
  private readonly ownsKernels: boolean;

  private constructor(
    source: ModelSource,
    spec: ModelSpec,
    readonly kernels: KernelContext,
    weights: ModelWeights,
    options: LoadOptions,
  ) {
    this.ownsKernels = options.kernels === undefined;
    this.spec = spec;
    this.info = { label: source.label, kind: source.kind, lossy: source.lossy };
    this.tokenizerFiles = source.tokenizerFiles;
    if (options.tokenizer !== undefined) this.tokenizerLoaded = { value: options.tokenizer };
    this.activations = options.activations ?? "int8";
    const contextLength = options.contextLength ?? Math.min(spec.maxPositions, 2048);
    if (!(Number.isSafeInteger(contextLength) && contextLength > 0)) throw new B158Error("E_USAGE", `context length ${contextLength} must be a positive integer`);
    this.transformer = new Transformer(spec, weights, kernels, { contextLength, activations: this.activations, ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }) });
    this.lastLogits = new Float32Array(spec.vocabSize);
    const projections = weights.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]);
    this.bitnetLinears = projections.filter((p) => p.bitnet).length;
    this.ternaryLinears = projections.filter((p) => p.ternary !== undefined).length;
    this.headFormat = "ternary" in weights.head ? weights.head.ternary.format : weights.head.format;
  }

  /** Builds a model from an open source (which the caller closes); weights move into the kernels one tensor at a time. */
  static async load(source: ModelSource, options: LoadOptions = {}): Promise<Model> {
    const spec: ModelSpec = options.activation === undefined ? source.spec : { ...source.spec, activation: options.activation };
    const kernels = options.kernels ?? (await createKernels({ backend: options.backend ?? "auto", threads: options.threads ?? availableParallelism() }));
    try {
      const weights = await loadWeights(source, spec, kernels, options);
      return new Model(source, spec, kernels, weights, options);
    } catch (error) {
      if (options.kernels === undefined) await kernels.close();
      throw error;
    }
  }

  /** The model's tokenizer (built on first use: a 128k-token tokenizer.json takes a second to load). */
  get tokenizer(): Tokenizer | undefined {
    this.tokenizerLoaded ??= { value: loadTokenizer(this.tokenizerFiles, this.info.label) };
    return this.tokenizerLoaded.value;
  }

  get contextLength(): number {
    return this.transformer.contextLength;
  }

  /** Bytes the kernels hold for weights. */
  get weightBytes(): number {
    return this.kernels.bytes;
  }

  /** Logits after every token of a new sequence: [tokens.length, vocabSize], row-major. */
  async forward(tokens: readonly number[], options: { readonly signal?: AbortSignal; readonly onProgress?: (done: number) => void } = {}): Promise<Float32Array> {
    const V = this.spec.vocabSize;
    const logits = new Float32Array(tokens.length * V);
    this.transformer.reset();
    await this.append(tokens, options, (from, count) => logits.subarray(from * V, (from + count) * V), undefined);
    return logits;
  }

  /**
   * An embedding model's output for a new sequence: the final hidden states pooled as the model
   * says (spec.pooling: last token, mean or CLS) and L2-normalized when it says so. No logits are
   * computed.
   */
  async embed(tokens: readonly number[], options: { readonly signal?: AbortSignal; readonly pooling?: ModelSpec["pooling"] } = {}): Promise<Float32Array> {
    const pooling = options.pooling ?? this.spec.pooling;
    if (pooling === undefined) {
      throw new B158Error("E_USAGE", `${this.info.label}: is not an embedding model (no pooling in its files)`, { details: { file: this.info.label }, hint: "Use forward() for logits." });
    }
    if (tokens.length === 0) throw new B158Error("E_USAGE", "no tokens to embed");
    const E = this.spec.hiddenSize;
    const hidden = new Float32Array(tokens.length * E);
    this.transformer.reset();
    const B = this.transformer.maxBatch;
    for (let from = 0; from < tokens.length; from += B) {
      checkAbort(options.signal);
      const count = Math.min(B, tokens.length - from);
      this.transformer.step(tokens, from, count, undefined, undefined, hidden.subarray(from * E, (from + count) * E));
      if (from + count < tokens.length) await yieldToEventLoop();
    }
    return poolHidden(hidden, tokens.length, E, pooling);
  }

  /** Runs `tokens` from the current position in steps, yielding to the event loop between them. */
  private async append(
    tokens: readonly number[],
    options: { readonly signal?: AbortSignal; readonly onProgress?: (done: number) => void },
    logitsFor: ((from: number, count: number) => Float32Array) | undefined,
    last: Float32Array | undefined,
  ): Promise<void> {
    const B = this.transformer.maxBatch;
    for (let from = 0; from < tokens.length; from += B) {
      checkAbort(options.signal);
      const count = Math.min(B, tokens.length - from);
      const isLast = from + count === tokens.length;
      this.transformer.step(tokens, from, count, logitsFor?.(from, count), isLast ? last : undefined);
      options.onProgress?.(from + count);
      if (!isLast) await yieldToEventLoop();
    }
  }

  /**
   * Streams generated tokens. `prompt` is text (tokenized with the model's tokenizer, special
   * tokens included) or token ids. After the loop, `generation.stats` holds the timings.
   */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    const promptTokens = typeof prompt === "string" ? this.requireTokenizer().encode(prompt) : [...prompt];
    return new Generation(this, promptTokens, options);
  }

  requireTokenizer(): Tokenizer {
    if (this.tokenizer === undefined) {
      throw new B158Error("E_TOKENIZER_MISSING", `${this.info.label}: has no tokenizer.json or tokenizer.model`, {
        details: { file: this.info.label },
        hint: "Pass token ids instead of text (--tokens 1,2,3).",
      });
    }
    return this.tokenizer;
  }

  /** @internal generation's access to the sequence. */
  async run(tokens: readonly number[], fresh: boolean, options: { signal?: AbortSignal; all?: Float32Array }): Promise<Float32Array> {
    if (fresh) this.transformer.reset();
    const V = this.spec.vocabSize;
    const all = options.all;
    await this.append(tokens, options.signal === undefined ? {} : { signal: options.signal }, all === undefined ? undefined : (from, count) => all.subarray(from * V, (from + count) * V), this.lastLogits);
    return this.lastLogits;
  }

  async close(): Promise<void> {
    if (this.ownsKernels) await this.kernels.close();
  }
}

export class Generation implements AsyncIterable<GeneratedToken> {
  private result: GenerationStats | undefined;

  constructor(
    private readonly model: Model,
    readonly promptTokens: readonly number[],
    private readonly options: GenerateOptions,
  ) {}

  /** Timings and tokens, once the iteration has finished. */
  get stats(): GenerationStats | undefined {
    return this.result;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<GeneratedToken> {
    const { model, promptTokens, options } = this;
    const V = model.spec.vocabSize;
    const maxTokens = options.maxTokens ?? 64;
    if (promptTokens.length === 0) throw new B158Error("E_USAGE", "the prompt has no tokens");
    if (promptTokens.length + maxTokens > model.contextLength) {
      throw new B158Error("E_CONTEXT_FULL", `${promptTokens.length} prompt tokens and ${maxTokens} to generate do not fit the context of ${model.contextLength}`, {
        details: { prompt: promptTokens.length, maxTokens, contextLength: model.contextLength },
        hint: "Load the model with a longer context, or generate fewer tokens.",
      });
    }
    const sampler = new Sampler(V, options);
    const eos = new Set(options.stopAtEos === false ? [] : model.spec.eosTokenIds);
    const stream = model.tokenizer === undefined ? undefined : new TextStream(model.tokenizer, promptTokens);
    const promptLogits = options.promptLogits ? new Float32Array(promptTokens.length * V) : undefined;
    const signal = options.signal;
    const started = process.hrtime.bigint();
    let logits = await model.run(promptTokens, true, { ...(signal === undefined ? {} : { signal }), ...(promptLogits === undefined ? {} : { all: promptLogits }) });
    const promptDone = process.hrtime.bigint();
    const tokens: number[] = [];
    const one = [0];
    let text = "";
    let stopReason: GenerationStats["stopReason"] = "length";
    while (tokens.length < maxTokens) {
      checkAbort(signal);
      const token = sampler.sample(logits);
      if (eos.has(token)) {
        stopReason = "eos";
        break;
      }
      tokens.push(token);
      const piece = stream?.push(token) ?? "";
      text += piece;
      yield { token, text: piece };
      if (tokens.length === maxTokens) break;
      one[0] = token;
      logits = await model.run(one, false, signal === undefined ? {} : { signal });
    }
    const rest = stream?.flush() ?? "";
    if (rest.length > 0) {
      text += rest;
      yield { token: -1, text: rest };
    }
    const finished = process.hrtime.bigint();
    const promptSeconds = Number(promptDone - started) / 1e9;
    const generationSeconds = Number(finished - promptDone) / 1e9;
    this.result = {
      promptTokens,
      tokens,
      text,
      promptSeconds,
      promptTokensPerSecond: promptTokens.length / promptSeconds,
      generationSeconds,
      generationTokensPerSecond: generationSeconds > 0 ? tokens.length / generationSeconds : 0,
      stopReason,
      ...(promptLogits === undefined ? {} : { promptLogits }),
    };
  }
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new B158Error("E_INTERRUPTED", "interrupted");
}

const LINEAR_SHAPES: Record<"q" | "k" | "v" | "o" | "gate" | "up" | "down", (s: ModelSpec) => [number, number]> = {
  q: (s) => [s.heads * s.headDim, s.hiddenSize],
  k: (s) => [s.kvHeads * s.headDim, s.hiddenSize],
  v: (s) => [s.kvHeads * s.headDim, s.hiddenSize],
  o: (s) => [s.hiddenSize, s.heads * s.headDim],
  gate: (s) => [s.intermediateSize, s.hiddenSize],
  up: (s) => [s.intermediateSize, s.hiddenSize],
  down: (s) => [s.hiddenSize, s.intermediateSize],
};

function shapeError(label: string, what: string, actual: readonly number[], expected: readonly number[]): B158Error {
  return new B158Error("E_MODEL_SHAPE", `${label}: ${what} is [${actual.join(", ")}] but the model's dimensions imply [${expected.join(", ")}]`, {
    details: { file: label, tensor: what, shape: actual, expected },
  });
}

async function loadWeights(source: ModelSource, spec: ModelSpec, kernels: KernelContext, options: LoadOptions): Promise<ModelWeights> {
  const architecture = ARCHITECTURES[spec.architecture];
  const roles = layerRoles(architecture, spec.projectionNorms);
  const total = spec.layers * roles.length + 3;
  let done = 0;
  const progress = (tensor: string) => {
    checkAbort(options.signal);
    options.onProgress?.({ done: ++done, total, tensor });
  };
  const vector = async (role: LayerRole | "norm", layer: number | undefined, width: number) => {
    let v = await source.vector(role, layer);
    const what = layer === undefined ? role : `layer ${layer} ${role}`;
    if (v.length !== width) throw shapeError(source.label, what, [v.length], [width]);
    // Gemma3's own norms compute x * (1 + w) in float32 (Gemma3RMSNorm)
    if (spec.normOffset !== 0 && OFFSET_NORM_ROLES.includes(role)) v = v.map((w) => Math.fround(spec.normOffset + w));
    progress(what);
    return v;
  };
  const projection = async (role: keyof typeof LINEAR_SHAPES, layer: number): Promise<Projection> => {
    const weight: LinearWeight = await source.linear(role, layer);
    const expected = LINEAR_SHAPES[role](spec);
    const { rows, cols } = weight.weight;
    if (rows !== expected[0] || cols !== expected[1]) throw shapeError(source.label, `layer ${layer} ${role}`, [rows, cols], expected);
    const made: Projection = weight.kind === "ternary" ? { rows, cols, ternary: await kernels.loadTernary(weight.weight), bitnet: weight.bitnet ?? true } : { rows, cols, dense: await kernels.loadDense(weight.weight), bitnet: weight.bitnet };
    progress(`layer ${layer} ${role}`);
    return made;
  };
  const matrix = async (role: "embed" | "head") => {
    const m = await source.matrix(role);
    if (m.rows !== spec.vocabSize || m.cols !== spec.hiddenSize) throw shapeError(source.label, role === "embed" ? "the token embedding" : "the output head", [m.rows, m.cols], [spec.vocabSize, spec.hiddenSize]);
    return m;
  };
  /** A ternary head keeps its ternary weights (a kernel product with float input); a float one is dense, int8 rows when asked. */
  const head = async (m: Awaited<ReturnType<typeof matrix>>, quantize: boolean): Promise<ModelWeights["head"]> =>
    isTernarySource(m) ? { ternary: await kernels.loadTernary(m) } : kernels.loadDense(quantize ? { ...m, quantize: "int8-rows" } : m);
  const E = spec.hiddenSize;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < spec.layers; l++) {
    const attnNorm = await vector("attnNorm", l, E);
    const q = await projection("q", l);
    const k = await projection("k", l);
    const v = await projection("v", l);
    const o = await projection("o", l);
    const attnSubNorm = architecture.subNorms ? await vector("attnSubNorm", l, spec.heads * spec.headDim) : undefined;
    const ffnNorm = await vector("ffnNorm", l, E);
    const gate = await projection("gate", l);
    const up = await projection("up", l);
    const down = await projection("down", l);
    const ffnSubNorm = architecture.subNorms ? await vector("ffnSubNorm", l, spec.intermediateSize) : undefined;
    const D = spec.headDim;
    const qNorm = architecture.qkNorm ? await vector("qNorm", l, D) : undefined;
    const kNorm = architecture.qkNorm ? await vector("kNorm", l, D) : undefined;
    const postAttnNorm = architecture.sandwichNorms ? await vector("postAttnNorm", l, E) : undefined;
    const postFfnNorm = architecture.sandwichNorms ? await vector("postFfnNorm", l, E) : undefined;
    const Q = spec.heads * D;
    const inputNorms = spec.projectionNorms
      ? {
          q: await vector(PROJECTION_NORM_ROLES.q, l, E),
          k: await vector(PROJECTION_NORM_ROLES.k, l, E),
          v: await vector(PROJECTION_NORM_ROLES.v, l, E),
          o: await vector(PROJECTION_NORM_ROLES.o, l, Q),
          gate: await vector(PROJECTION_NORM_ROLES.gate, l, E),
          up: await vector(PROJECTION_NORM_ROLES.up, l, E),
          down: await vector(PROJECTION_NORM_ROLES.down, l, spec.intermediateSize),
        }
      : undefined;
    const optional = { attnSubNorm, ffnSubNorm, qNorm, kNorm, postAttnNorm, postFfnNorm, inputNorms };
    layers.push({ attnNorm, ffnNorm, q, k, v, o, gate, up, down, ...(Object.fromEntries(Object.entries(optional).filter(([, x]) => x !== undefined)) as Partial<LayerWeights>) });
  }
  const norm = await vector("norm", undefined, E);
  const int8Head = options.int8Head === true;
  const embedSource = await matrix("embed");
  // a ternary embedding (a ternary source's) is looked up row by row from its codes; a float one by the kernels
  const embed: DenseMatrix | EmbeddingRows = isTernarySource(embedSource) ? ternaryEmbeddingRows(await ternaryInMemory(embedSource)) : await kernels.loadDense(embedSource);
  progress("embed");
  // a tied head is the embedding (its own int8 copy when int8 rows are asked for, its own ternary kernel weights when ternary)
  const tied = async (): Promise<ModelWeights["head"]> => (!("row" in embed) && !int8Head ? embed : head(embedSource, int8Head));
  const output = spec.tiedHead ? await tied() : await head(await matrix("head"), int8Head);
  progress("head");
  return { embed, head: output, norm, layers };
}
