import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { openCheckpoint, CONFIG_FILE, type Checkpoint } from "../checkpoint/open.js";
import { resolveSource } from "../checkpoint/resolve.js";
import type { PullProgress } from "../hub/pull.js";
import { B158Error, interruptedError } from "../errors.js";
import { isGgufFile } from "../formats/b158/detect.js";
import { refuseGgufInput } from "../formats/gguf/refusals.js";
import { TERNARY_TYPE } from "../export/gguf.js";
import { modelActivationDiagnostics } from "../model/activation.js";
import { DTYPE_BYTES, isFloatDtype } from "../formats/safetensors/dtypes.js";
import { readTensorBytes } from "../formats/safetensors/read.js";
import type { B158Options, EmbeddedFile } from "../formats/b158/header.js";
import { headerParams } from "../formats/b158/params.js";
import { PLAIN_LAYOUT_BYTES, type PlainLayout } from "../formats/b158/spec.js";
import { B158Writer, type PlannedTensor, type WriterDraft } from "../formats/b158/write.js";
import type { Diagnostic } from "../model/diagnostics.js";
import type { WeightsOverride } from "../model/family.js";
import { planCheckpoint, type PlanEntry, type TensorPlan } from "../model/plan.js";
import { chooseEncoding, type FallbackDtype } from "../pack/codec.js";
import { fromBf16Bits, fromF16Bits } from "../pack/float16.js";
import { parseKernelConfig } from "../pack/kernel-config.js";
import { parseLayoutId, SCALE_BLOCK, type LayoutId } from "../pack/layouts.js";
import { scaleFromWeightScale } from "../pack/repack.js";
import { prepareOutput } from "../io/atomic-file.js";
import { fileSha256 } from "../io/file-hash.js";
import { readAhead } from "../io/byte-source.js";
import { bitsPerWeightByRole } from "../report/bits-per-weight.js";
import { TOOL } from "../version.js";
import type { FloatLayout } from "./float-convert.js";
import type { FloatTask } from "./float-task.js";
import { TaskPool } from "./pool.js";
import type { TernaryTask } from "./task.js";
import type { PayloadScan } from "./payload-scan.js";
import { validateB158, type B158Validation, type PackedCheck } from "./validate-b158.js";
import type { WrittenChecksum } from "./checksum.js";

/**
 * `b158 convert`: a checkpoint to a .b158, tensor by tensor, driven by the plan. Every tensor is a
 * job for the worker pool: the worker reads it by position, converts it (ternary tensors in two
 * streaming passes, float tensors in chunks), then hashes and writes the payload into its slot.
 * Payload offsets are fixed up front, so the output does not depend on the thread count or the
 * order jobs finish in; this thread schedules, writes the header and validates. The file is
 * validated before it is renamed onto the target; on any error or abort nothing is left behind.
 */
export interface ConvertOptions {
  readonly layout: LayoutId;
  readonly output: string;
  readonly force?: boolean;
  /** Payload blocks past the page cache with O_DIRECT: B158Writer's `directIo` ("auto": files of 64 MiB or more). */
  readonly directIo?: "auto" | "on" | "off";
  /** Worker threads; default all cores. 0 runs inline. */
  readonly threads?: number;
  readonly fallback?: FallbackDtype;
  /** Dtype for float tensors other than norms and embeddings (norms are always kept exact). */
  readonly floatDtype?: FloatLayout;
  /** Dtype for the embedding and lm_head. */
  readonly embeddings?: FloatLayout;
  readonly ternarize?: readonly string[];
  /**
   * Override the source semantics of the float linears (`--weights`): "latent" ternarizes them with
   * absmean (online), "quantized" reads them as stored ternary x scale. Default: from the checkpoint's
   * config (docs/ternarization.md). Recorded in the file's provenance when given.
   */
  readonly weights?: WeightsOverride;
  readonly i2sVariant?: "x86" | "arm";
  /** A bitnet.cpp kernel_config.ini: its text and file name. */
  readonly kernelConfig?: { readonly text: string; readonly file: string };
  /** Validate the written file before publishing it (default true). */
  readonly validate?: boolean;
  /**
   * Runs on the complete, validated file (at its temporary path) before it is published; a throw
   * leaves nothing at the output path. `convert --eval` checks the conversion here.
   */
  readonly beforePublish?: (writtenPath: string) => Promise<void>;
  /**
   * With `fallback`, a layout that holds none of the ternary tensors would write a file of floats
   * under a ternary layout's name: E_LAYOUT_SHAPE unless this is true.
   */
  readonly allowNoTernary?: boolean;
  readonly signal?: AbortSignal;
  /** After each tensor is written. */
  readonly onProgress?: (progress: ConvertProgress) => void;
  /** When a phase starts: reading the source, converting, validating the written file. */
  readonly onPhase?: (phase: ConvertPhase) => void;
  /** Progress of a Hub source's download into the cache, before the conversion starts. */
  readonly onDownload?: (progress: PullProgress) => void;
  /** Bytes per read (default 4 MiB). */
  readonly chunkBytes?: number;
}

export interface ConvertProgress {
  readonly tensor: string;
  /** Tensors written so far, of `total`. */
  readonly done: number;
  readonly total: number;
  /** Payload bytes written so far, of `bytesTotal`. */
  readonly bytesWritten: number;
  readonly bytesTotal: number;
  /** This tensor: its shape, source dtype and bytes, and what it was written as. */
  readonly shape: readonly number[];
  readonly sourceDtype: string;
  readonly layout: string;
  readonly sourceBytes: number;
  readonly bytes: number;
}

export interface ConvertPhase {
  readonly phase: "reading" | "converting" | "validating";
  /** converting: tensors to write; validating: tensors to check. */
  readonly tensors?: number;
  /** converting: payload bytes to write; validating: file bytes to hash. */
  readonly bytes?: number;
}

export interface ConvertSummary {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly seconds: number;
  readonly layout: LayoutId;
  readonly family: string;
  readonly threads: number;
  /** Payload bytes written with O_DIRECT, past the page cache (io/direct-io.ts); 0 where unavailable or below 64 MiB. */
  readonly directIoBytes: number;
  readonly tensors: { readonly total: number; readonly byLayout: Readonly<Record<string, number>> };
  /** Bits per weight by role (payload bytes x 8 / weights), and for the whole file. */
  readonly bitsPerWeight: Readonly<Record<string, number>>;
  readonly fallbacks: readonly { readonly tensor: string; readonly dtype: string; readonly reason: string }[];
  readonly validated: boolean;
  /** Plan warnings, the runtimes' activation warning, and W_FALLBACK for each tensor kept as floats. */
  readonly warnings: readonly Diagnostic[];
}

interface Job {
  readonly index: number;
  readonly entry: PlanEntry;
  readonly planned: PlannedTensor;
  readonly task?: TernaryTask;
  /** A plain tensor: copied, or re-encoded to its target dtype. */
  readonly floatTask?: FloatTask;
}

export async function convertCheckpoint(spec: string, convertOptions: ConvertOptions): Promise<ConvertSummary> {
  const started = process.hrtime.bigint();
  const options: ConvertOptions = { ...convertOptions, layout: parseLayoutId(convertOptions.layout) };
  options.onPhase?.({ phase: "reading" });
  if (await isGgufFile(spec)) await refuseGgufInput(spec, "convert");
  // the output path first: a missing folder or a directory must not cost a conversion
  const outputNotes = await prepareOutput(options.output, options.force ?? false);
  const checkpoint = await openCheckpoint(await resolveSource(spec, { ...(options.signal === undefined ? {} : { signal: options.signal }), ...(options.onDownload === undefined ? {} : { onDownload: options.onDownload }) }));
  let writer: B158Writer | undefined;
  // two jobs per worker overlap one's disk writes with the other's work; every layout packs by row
  // ranges in its job's arena, so a second job costs a second arena, never a tensor's codes
  const pool = new TaskPool(options.threads ?? availableParallelism(), 2);
  let stopOnAbort: (() => void) | undefined;
  try {
    const plan = await planCheckpoint(checkpoint, {
      ternarize: options.ternarize ?? [],
      ...(options.weights === undefined ? {} : { weights: options.weights }),
      floatHeads: options.embeddings !== undefined,
    });
    refuseBrokenPlans(spec, plan);
    const kernelConfig = options.kernelConfig === undefined ? undefined : parseKernelConfig(options.kernelConfig.text, options.kernelConfig.file);
    const { jobs, fallbacks } = await planJobs(checkpoint, plan, options, kernelConfig);
    refuseAllFallback(spec, options, jobs, fallbacks);
    const draft = await headerDraft(checkpoint, plan, options);
    writer = await B158Writer.create(options.output, draft, jobs.map((j) => j.planned), { force: options.force ?? false, ...(options.directIo === undefined ? {} : { directIo: options.directIo }) });
    const bytesTotal = jobs.reduce((sum, j) => sum + j.planned.length, 0);
    let bytesWritten = 0;
    let done = 0;
    options.onPhase?.({ phase: "converting", tensors: jobs.length, bytes: bytesTotal });
    const report = (job: Job) => {
      bytesWritten += job.planned.length;
      done++;
      const sourceBytes = job.task?.byteLength ?? job.floatTask?.byteLength ?? 0;
      options.onProgress?.({ tensor: job.entry.name, done, total: jobs.length, bytesWritten, bytesTotal, shape: job.planned.shape, sourceDtype: job.entry.dtype, layout: job.planned.layout, sourceBytes, bytes: job.planned.length });
    };
    const interrupted = () => interruptedError(options.output, "conversion", options.signal);
    const checkAbort = () => {
      if (options.signal?.aborted) throw interrupted();
    };
    // workers stop mid-tensor rather than finish it (inline jobs cannot be stopped: they run here)
    stopOnAbort = () => void pool.close(interrupted());
    options.signal?.addEventListener("abort", stopOnAbort, { once: true });
    const written = await writeJobs(jobs, writer, pool, report, checkAbort);
    // the workers' memory (their heaps and arenas) is not needed to finish and validate the file
    await pool.close();
    checkAbort();
    const finished = await writer.finish();
    let validation: B158Validation | undefined;
    if (options.validate !== false) {
      options.onPhase?.({ phase: "validating", tensors: jobs.length, bytes: finished.size });
      validation = await validateB158(finished.tempPath, {
        packed: written.checks,
        nonFinite: written.nonFinite,
        readBack: written.readBack,
        checksums: written.checksums,
        directRead: written.directBytes > 0,
      });
      if (!validation.ok) {
        throw new B158Error("E_VALIDATION_FAILED", `${options.output}: the written file failed validation: ${validation.diagnostics.filter((d) => d.severity === "error").map((d) => d.message).join("; ")}`, {
          details: { diagnostics: validation.diagnostics },
          hint: "Run b158 validate on the checkpoint: the input is likely degenerate.",
        });
      }
    }
    checkAbort();
    await options.beforePublish?.(finished.tempPath);
    checkAbort();
    await writer.publish();
    const sha256 = validation?.sha256 ?? (await fileSha256(options.output, { direct: written.directBytes > 0 }));
    const summary = summarize(options, checkpoint, plan, jobs, fallbacks, finished.size, sha256, pool.threads, started, validation !== undefined, written.directBytes);
    return { ...summary, warnings: [...outputNotes, ...summary.warnings] };
  } catch (error) {
    // workers write into the temp file: stop them before its descriptor is closed
    await pool.close();
    await writer?.abort();
    throw error;
  } finally {
    if (stopOnAbort !== undefined) options.signal?.removeEventListener("abort", stopOnAbort);
    await pool.close();
    await checkpoint.close();
  }
}

/**
 * Payloads from which a job has a worker to itself (pool.ts): a 2.4B model's 657 MB embedding,
 * sharing its worker, got a quarter of it and finished 0.4 s after every other job.
 */
const EXCLUSIVE_JOB_BYTES = 128 * 1024 * 1024;

/** Bytes of payloads after which the disk starts on them, rather than all at the final fsync. */
const FLUSH_EVERY = 256 * 1024 * 1024;

/**
 * Writes every payload. Each tensor is a pool job that reads, converts, hashes and writes it into
 * its slot of the file, so this thread only schedules and collects hashes. Jobs go largest first
 * (the embedding does not become the tail), at most two per worker in flight (pool.ts) plus one queued, so
 * memory stays bounded. Returns what was checked on the way (ternary decodes, NaN/Inf counts of
 * floats, each payload as read back from the file, or the checksum of one written direct), which
 * validation trusts once hashes match.
 * After a failure nothing new starts, what is running settles, and the first error is thrown.
 */

async function writeJobs(
  jobs: readonly Job[],
  writer: B158Writer,
  pool: TaskPool,
  report: (job: Job) => void,
  checkAbort: () => void,
): Promise<{ checks: Map<string, PackedCheck>; nonFinite: Map<string, number>; readBack: Map<string, PayloadScan>; checksums: Map<string, WrittenChecksum>; directBytes: number }> {
  let directBytes = 0;
  const checks = new Map<string, PackedCheck>();
  const nonFinite = new Map<string, number>();
  const readBack = new Map<string, PayloadScan>();
  const checksums = new Map<string, WrittenChecksum>();
  let failure: { error: unknown } | undefined;
  const inFlight = new Set<Promise<void>>();
  const limit = Math.max(1, pool.threads * pool.jobsPerWorker) + 1;
  let unflushed = 0;
  for (const job of [...jobs].sort((a, b) => b.planned.length - a.planned.length || a.index - b.index)) {
    if (failure !== undefined) break;
    const running = (async () => {
      checkAbort();
      const slot = writer.slot(job.index);
      const exclusive = job.planned.length >= EXCLUSIVE_JOB_BYTES;
      const result = job.task !== undefined ? await pool.write({ kind: "ternary", task: job.task, slot }, { exclusive }) : await pool.write({ kind: "float", task: job.floatTask!, slot }, { exclusive });
      if (result.check !== undefined) checks.set(job.entry.name, result.check);
      if (result.nonFinite !== undefined) nonFinite.set(job.entry.name, result.nonFinite);
      if (result.readBack !== undefined) readBack.set(job.entry.name, result.readBack);
      if (result.checksum !== undefined) checksums.set(job.entry.name, { sha256: result.sha256, xxh64: result.checksum });
      directBytes += result.directBytes;
      writer.record(job.index, result.sha256, job.planned.ternary ? result.scale : undefined);
      unflushed += job.planned.length;
      if (unflushed >= FLUSH_EVERY) {
        unflushed = 0;
        writer.flushSoFar();
      }
      report(job);
    })().catch((error: unknown) => void (failure ??= { error }));
    const tracked = running.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= limit) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
  return { checks, nonFinite, readBack, checksums, directBytes };
}

function refuseBrokenPlans(spec: string, plan: TensorPlan): void {
  const errors = plan.diagnostics.filter((d) => d.severity === "error");
  const refused = errors.find((d) => d.code === "E_FORMAT_REFUSED");
  if (refused !== undefined) {
    // what the files are and why, in the plan's words (docs/families.md, "Refused checkpoints")
    throw new B158Error("E_FORMAT_REFUSED", `${spec}: b158 will not convert ${refused.message}`, { details: { diagnostics: [refused] } });
  }
  if (errors.length > 0) {
    const unsupported = errors.find((d) => d.code === "E_MODEL_UNSUPPORTED");
    throw new B158Error(unsupported ? "E_MODEL_UNSUPPORTED" : "E_VALIDATION_FAILED", `${spec}: ${errors.length} problem${errors.length === 1 ? "" : "s"} in the checkpoint: ${errors.slice(0, 3).map((d) => d.message).join("; ")}`, {
      details: { diagnostics: errors },
      hint: "Run b158 validate on it to see every problem.",
    });
  }
  if (plan.family.id === "generic" && !plan.entries.some((e) => e.role === "ternary-linear")) {
    throw new B158Error("E_MODEL_FAMILY", `${spec}: not a BitNet checkpoint, and no --ternarize glob names tensors to ternarize`, {
      hint: "Name the linear weights, e.g. --ternarize 'model.layers.*_proj.weight' (post-training ternarization is lossy).",
    });
  }
}

/** `--fallback` that would leave no tensor in the layout asked for: a float file under a ternary name. */
function refuseAllFallback(spec: string, options: ConvertOptions, jobs: readonly Job[], fallbacks: ConvertSummary["fallbacks"]): void {
  if (fallbacks.length === 0 || options.allowNoTernary === true || jobs.some((j) => j.planned.ternary)) return;
  const reasons = [...new Set(fallbacks.map((f) => f.reason))];
  throw new B158Error("E_LAYOUT_SHAPE", `${spec}: no ternary tensor fits ${options.layout}: --fallback ${options.fallback} would keep all ${fallbacks.length} as ${fallbacks[0]!.dtype} (${reasons.slice(0, 2).join("; ")})`, {
    hint: "Choose a layout that holds these shapes (b158 inspect shows which), or add --allow-no-ternary to write the float file anyway.",
    details: { layout: options.layout, fallback: options.fallback, tensors: fallbacks.length, reasons },
  });
}

const ROLE_OF: Record<string, PlannedTensor["role"]> = { "ternary-linear": "ternary-linear", embedding: "embedding", "lm-head": "lm-head", norm: "norm", other: "other", scale: "other" };

async function planJobs(checkpoint: Checkpoint, plan: TensorPlan, options: ConvertOptions, kernelConfig: ReturnType<typeof parseKernelConfig> | undefined) {
  const jobs: Job[] = [];
  const fallbacks: { tensor: string; dtype: string; reason: string }[] = [];
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  for (const entry of plan.entries) {
    if (entry.role === "scale" && entry.action === "consume") continue;
    const tensor = checkpoint.tensorsByName.get(entry.name)!;
    const base = { name: entry.name, gguf_name: entry.ggufName ?? null, role: ROLE_OF[entry.role]!, source_dtype: entry.dtype };
    const index = jobs.length;
    if (entry.layouts !== undefined) {
      const shape = entry.logicalShape as [number, number];
      // stored weights: the granularity the sample showed decides the fallback (or E_LAYOUT_SCALES) up front
      const encoding = chooseEncoding(entry.name, shape, options.layout, {
        ...(options.fallback === undefined ? {} : { fallback: options.fallback }),
        ...(kernelConfig === undefined ? {} : { kernelConfig }),
        ...(entry.groupSize === undefined ? {} : { groupSize: entry.groupSize }),
        i2sVariant: options.i2sVariant ?? "x86",
      });
      const path = localPath(checkpoint, tensor.shard);
      let repackScale: number | undefined;
      if (entry.action === "repack") {
        const scaleTensor = checkpoint.tensorsByName.get(entry.scaleTensor!)!;
        const bytes = await readTensorBytes(await checkpoint.source(scaleTensor.shard), scaleTensor);
        repackScale = scaleFromWeightScale(readScalar(bytes, scaleTensor.dtype), plan.family.convention === "multiply" ? "multiply" : "divide", entry.scaleTensor);
      }
      const task: TernaryTask = {
        name: entry.name,
        path,
        fileOffset: tensor.fileOffset,
        byteLength: tensor.byteLength,
        sourceDtype: tensor.dtype,
        shape,
        action: entry.action === "repack" ? "repack" : entry.action === "extract" ? "extract" : "ternarize",
        ...(entry.action === "repack" ? { packedShape: tensor.shape as [number, number], repackScale: repackScale! } : {}),
        encoding: encoding.kind === "layout" ? { kind: "layout", params: encoding.params } : { kind: "fallback", dtype: encoding.dtype },
        chunkBytes,
      };
      if (encoding.kind === "layout") {
        // stored weights may turn out per group in a layout that holds groups: the header entry then has group_size
        const mayGroup = entry.action === "extract" && SCALE_BLOCK[encoding.params.layout] !== undefined;
        jobs.push({ index, entry, task, planned: { ...base, shape, layout: encoding.params.layout, params: headerParams(encoding.params), length: encoding.payloadBytes, ternary: true, ...(mayGroup ? { mayGroup } : {}) } });
      } else {
        fallbacks.push({ tensor: entry.name, dtype: encoding.dtype, reason: `${encoding.reason} (rule ${encoding.rule})` });
        const size = PLAIN_LAYOUT_BYTES[encoding.dtype];
        jobs.push({ index, entry, task, planned: { ...base, shape, layout: encoding.dtype, params: {}, length: shape[0] * shape[1] * size, ternary: false } });
      }
      continue;
    }
    const target = floatTarget(entry, options);
    const floatTask: FloatTask = {
      name: entry.name,
      path: localPath(checkpoint, tensor.shard),
      fileOffset: tensor.fileOffset,
      byteLength: tensor.byteLength,
      sourceDtype: tensor.dtype,
      elementBytes: DTYPE_BYTES[tensor.dtype],
      target,
      chunkBytes,
    };
    jobs.push({ index, entry, floatTask, planned: { ...base, shape: entry.shape, layout: target, params: {}, length: entry.parameters * PLAIN_LAYOUT_BYTES[target], ternary: false } });
  }
  return { jobs, fallbacks };
}

/** Norms stay exact; embeddings follow --embeddings, other floats --float-dtype; everything else its source dtype. */
function floatTarget(entry: PlanEntry, options: ConvertOptions): PlainLayout {
  const source = entry.dtype.toLowerCase();
  if (!(source in PLAIN_LAYOUT_BYTES)) {
    throw new B158Error("E_MODEL_UNSUPPORTED", `tensor "${entry.name}" has dtype ${entry.dtype}, which .b158 1.0 cannot store`, { details: { tensor: entry.name, dtype: entry.dtype } });
  }
  if (!isFloatDtype(entry.dtype) || entry.role === "norm") return source as PlainLayout;
  if (entry.role === "embedding" || entry.role === "lm-head") return options.embeddings ?? options.floatDtype ?? (source as PlainLayout);
  return options.floatDtype ?? (source as PlainLayout);
}

/** Workers open weights files themselves, by path. */
function localPath(checkpoint: Checkpoint, shard: string): string {
  const path = checkpoint.files.localPath?.(shard);
  if (path === undefined) throw new B158Error("E_INTERNAL", `${checkpoint.label}: ${shard} has no local path`);
  return path;
}

function readScalar(bytes: Uint8Array, dtype: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") return view.getFloat32(0, true);
  if (dtype === "F64") return view.getFloat64(0, true);
  if (dtype === "BF16") return fromBf16Bits(view.getUint16(0, true));
  return fromF16Bits(view.getUint16(0, true));
}

async function headerDraft(checkpoint: Checkpoint, plan: TensorPlan, options: ConvertOptions): Promise<WriterDraft> {
  const files: Record<string, EmbeddedFile> = {};
  for (const name of [CONFIG_FILE, ...checkpoint.auxiliaryFiles]) {
    if (await checkpoint.files.has(name)) files[name] = await embeddedSource(checkpoint, name);
  }
  const origin = checkpoint.files.origin;
  const opts: B158Options = {
    layout: options.layout,
    i2s_variant: options.i2sVariant ?? "x86",
    fallback: options.fallback ?? null,
    float_dtype: options.floatDtype ?? null,
    embeddings: options.embeddings ?? null,
    ternarize: [...(options.ternarize ?? [])],
    kernel_config_sha256: options.kernelConfig === undefined ? null : createHash("sha256").update(options.kernelConfig.text).digest("hex"),
    ...(options.weights === undefined ? {} : { weights: options.weights }),
  };
  return {
    format: "b158",
    model: { family: plan.family.id, architecture: checkpoint.config?.architectures[0] ?? null, config: (checkpoint.config?.raw as Record<string, unknown> | undefined) ?? null },
    files,
    provenance: {
      source: origin.kind === "hub" ? { kind: "hub", repo: origin.repo, revision: origin.revision, ...(origin.commit ? { commit: origin.commit } : {}) } : { kind: "local" },
      files: checkpoint.weightsFiles.map((f) => ({ name: f.name, size: f.size })),
      options: opts,
    },
    tool: TOOL,
  };
}

/** A file the header embeds, read from the checkpoint when the header is written (and hashed now, so a change in between is caught). */
async function embeddedSource(checkpoint: Checkpoint, name: string): Promise<EmbeddedFile> {
  const chunks = async function* () {
    const source = await checkpoint.files.open(name);
    try {
      yield* readAhead(source, 0, source.size, EMBEDDED_CHUNK_BYTES, true);
    } finally {
      await source.close();
    }
  };
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunks()) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { size, sha256: hash.digest("hex"), chunks };
}

const EMBEDDED_CHUNK_BYTES = 1024 * 1024;

function summarize(options: ConvertOptions, checkpoint: Checkpoint, plan: TensorPlan, jobs: readonly Job[], fallbacks: ConvertSummary["fallbacks"], size: number, sha256: string, threads: number, started: bigint, validated: boolean, directIoBytes: number): ConvertSummary {
  const byLayout: Record<string, number> = {};
  for (const job of jobs) byLayout[job.planned.layout] = (byLayout[job.planned.layout] ?? 0) + 1;
  const bitsPerWeight = bitsPerWeightByRole(
    jobs.map((job) => ({ role: job.planned.role, bytes: job.planned.length, weights: job.entry.parameters })),
    size,
  );
  // the activation warning for the written file: only the runtimes that can hold its layout
  const activation = modelActivationDiagnostics({ family: plan.family.id, hfArchitecture: checkpoint.config?.architectures[0], config: checkpoint.config?.raw as Record<string, unknown> | undefined, weightTypes: [TERNARY_TYPE[options.layout]] });
  const warnings: Diagnostic[] = [...plan.diagnostics.filter((d) => d.code !== "W_GGUF_ACTIVATION"), ...activation].filter((d) => d.severity === "warning");
  for (const f of fallbacks) warnings.push({ severity: "warning", code: "W_FALLBACK", tensor: f.tensor, message: `"${f.tensor}" kept as ${f.dtype}: ${f.reason}` });
  return {
    path: options.output,
    size,
    sha256,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    layout: options.layout,
    family: plan.family.id,
    threads,
    directIoBytes,
    tensors: { total: jobs.length, byLayout },
    bitsPerWeight,
    fallbacks,
    validated,
    warnings,
  };
}
