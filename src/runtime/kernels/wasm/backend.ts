import { B158Error } from "../../../errors.js";
import type { ActivationMode, AttentionCache, DenseMatrix, DenseWeightInput, DenseWeightSource, KernelContext, PayloadReader, ScaleSpec, TernaryMatrix, TernaryWeightInput, TernaryWeightSource } from "../api.js";
import { halfBitsToFloat32 } from "../../../pack/float16.js";
import { checkAttention, checkCacheShape, checkGate, checkRows, decodeTernary, denseInMemory, ternaryInMemory } from "../reference.js";
import { ATTENTION, ROWS, DENSE, DENSE_PRESCALED, DISPATCH, DenseLayout, KERNEL, TASK, TERNARY, TernaryLayout, type DenseLayoutId, type TernaryLayoutId } from "./layout.js";
import { gemmScratchBytes, PORTABLE_GEMV_ROWS, RELAXED_GEMV_ROWS, TERNARY_VARIANTS } from "./gen-ternary.js";
import { Dispatcher, type ThreadOptions } from "./threads.js";

/**
 * The WebAssembly backends over one shared memory: weights are copied in once, packed as they came
 * (I2_S and TQ2_0 bytes untouched; codes re-laid once into b158's padded I2_S order), and every
 * product prepares its activations once per token and dispatches row chunks to the threads.
 */
interface KernelExports {
  work(ctrl: number, tid: number): void;
  act_quantize(x: number, k: number, q: number): number;
  act_pad(src: number, k: number, g: number, gp: number, dst: number): void;
  act_pad_f64(x: number, k: number, g: number, gp: number, dst: number): void;
  act_split16(q: number, kp: number, dst: number): void;
  /** Per TernaryVariant name (act_telescope_i2s128, ...): the portable GEMV's activations. */
  [telescope: `act_telescope_${string}`]: (src: number, kp: number, dst: number) => void;
  act_interleave4(src: number, stride: number, vectors: number, count: number, dst: number): void;
  act_widen16(q: number, kp: number, dst: number): void;
  act_block_sums(q: number, blocks: number, gp: number, dst: number): void;
  has_code3(p: number, count: number, bytes: number, stride: number): number;
  f16_nonfinite(p: number, n: number): number;
  relay_codes(src: number, rows: number, cols: number, g: number, gp: number, unit: number, dst: number, tmp: number): number;
  threshold_codes(src: number, n: number, threshold: number, dst: number): void;
  dense_quant_rows(src: number, kind: number, rows: number, cols: number, kp: number, dst: number, scales: number): void;
}

export interface WasmKernelOptions extends ThreadOptions {
  readonly threads: number;
  /** Token count from which int8 products use the GEMM kernels (tile unpacked once, 4 tokens per pass). */
  readonly gemmMinTokens?: number;
  /** Multiply-adds per chunk a thread claims (tests make it tiny to exercise the split). */
  readonly chunkMacs?: number;
  /** Below this many multiply-adds a product runs on the calling thread alone. */
  readonly parallelMinMacs?: number;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const DISPATCH_AT = 2048;
const MAX_TASKS = 60;
const HEAP_AT = DISPATCH_AT + DISPATCH.tasksAt + MAX_TASKS * TASK.size;
/** Bytes per read of a payload straight into memory. */
const READ_BYTES = 1 << 26;
/** Multiply-adds per chunk a thread claims: small enough to balance, large enough to amortise the claim. */
const CHUNK_MACS = 1 << 18;
/** Below this many multiply-adds a dispatch runs on the calling thread alone (waking a worker costs more). */
const PARALLEL_MACS = 1 << 17;
const STAGE_BYTES = 1 << 22;

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

const VARIANT_NAME = Object.fromEntries(TERNARY_VARIANTS.map((v) => [v.layout, v.name])) as Record<TernaryLayoutId, string>;

/**
 * Matrices whose blocks need no padding share one activation layout ("natural": the int8
 * activations as they are); padded groups need activations padded the same way.
 */
const geometryKey = (w: WasmTernary): string => (w.group === w.paddedGroup ? "natural" : `${w.group}/${w.paddedGroup}`);

interface WasmTernary extends TernaryMatrix {
  readonly record: number;
  readonly layout: TernaryLayoutId;
  /** Weights per scale block, and as stored (padded with zero weights to a multiple of 64). */
  readonly group: number;
  readonly paddedGroup: number;
  readonly paddedCols: number;
}

interface WasmDense extends DenseMatrix {
  readonly record: number;
  readonly layout: DenseLayoutId;
  readonly weights: number;
  readonly rowBytes: number;
  readonly paddedCols: number;
  readonly scales: number;
}

/** A dispatch's tasks as the words of its record (TASK layout), and which words are frame offsets. */
interface TaskWords {
  readonly count: number;
  readonly chunks: number;
  readonly words: Int32Array;
  readonly relative: readonly number[];
}

function taskWords(tasks: readonly Task[], frameRelative: readonly ("act" | "qsum" | "actScale" | "out")[]): TaskWords {
  const words = new Int32Array((tasks.length * TASK.size) / 4);
  const relative: number[] = [];
  let chunks = 0;
  tasks.forEach((task, i) => {
    const base = (i * TASK.size) / 4;
    const count = Math.ceil(task.rows / task.rowsPerChunk);
    words[base + TASK.kernel / 4] = task.kernel;
    words[base + TASK.matrix / 4] = task.matrix;
    words[base + TASK.rowsPerChunk / 4] = task.rowsPerChunk;
    words[base + TASK.firstChunk / 4] = chunks;
    words[base + TASK.chunks / 4] = count;
    words[base + TASK.tokens / 4] = task.tokens;
    words[base + TASK.act / 4] = task.act;
    words[base + TASK.actStride / 4] = task.actStride;
    words[base + TASK.qsum / 4] = task.qsum ?? 0;
    words[base + TASK.qsumStride / 4] = task.qsumStride ?? 0;
    words[base + TASK.actScale / 4] = task.actScale ?? 0;
    words[base + TASK.out / 4] = task.out;
    words[base + TASK.outStride / 4] = task.outStride;
    words[base + TASK.flags / 4] = task.flags ?? 0;
    for (const field of frameRelative) if (field === "act" || field === "out" || task[field] !== undefined) relative.push(base + TASK[field] / 4);
    chunks += count;
  });
  return { count: tasks.length, chunks, words, relative };
}

/** A linear() call worked out once (WasmKernels.linearPlan); offsets are from the frame's start. */
interface LinearPlan {
  readonly K: number;
  readonly Kq: number;
  readonly float: boolean;
  /** The relaxed GEMV reads the int8 activations as bytes; every other int8 kernel reads them split into i16. */
  readonly byteActs: boolean;
  readonly gemm: boolean;
  readonly frameBytes: number;
  readonly x: number;
  readonly q: number;
  readonly s: number;
  /** Per block geometry: g/gp/kp, padded q (or q), split i16, and what the kernels read (act, stride). */
  readonly geometries: readonly { g: number; gp: number; kp: number; padded: boolean; qp: number; qpStride: number; split: number; act: number; stride: number; vectors: number }[];
  /** The portable GEMV's telescoped activations, per geometry and layout (their own unit order). */
  readonly telescoped: readonly { geometry: number; name: string; at: number }[];
  readonly blockSums: readonly { geometry: number; blocks: number; gp: number; at: number }[];
  readonly outs: readonly number[];
  readonly tasks: TaskWords;
  readonly chunks: number;
  readonly scratchBytes: number;
  readonly macs: number;
}

/** Puts rows r0 .. r0 + n - 1 as int8 codes at `stage` (`extra`: room it may use on the way). */
type StageFill = ((r0: number, n: number, stage: number, extra: number) => void) & { badRow?: (row: number) => void };

interface WasmCache extends AttentionCache {
  readonly at: number;
  /** Bytes of one layer's keys (its values follow). */
  readonly half: number;
  readonly stride: number;
  readonly paddedDim: number;
  readonly record: number;
}

interface Task {
  kernel: number;
  matrix: number;
  rows: number;
  rowsPerChunk: number;
  tokens: number;
  act: number;
  actStride: number;
  qsum?: number;
  qsumStride?: number;
  actScale?: number;
  out: number;
  outStride: number;
  flags?: number;
}

export class WasmKernels implements KernelContext {
  readonly threads: number;
  private readonly memory: WebAssembly.Memory;
  private readonly exports: KernelExports;
  private readonly dispatcher: Dispatcher;
  private matrices = new WeakSet<object>();
  private plans = new WeakMap<readonly TernaryMatrix[], Map<number, LinearPlan>>();
  private caches = new WeakSet<object>();
  private readonly gemmMinTokens: number;
  private readonly chunkMacs: number;
  private readonly parallelMinMacs: number;
  private top = HEAP_AT;
  private heldBytes = 0;
  private frame = { at: 0, size: 0 };
  private scratch = { at: 0, size: 0 };
  private stage = { at: 0, size: 0 };
  private faultNext = false;
  private buffer: ArrayBufferLike;
  private u8!: Uint8Array;
  private i32!: Int32Array;
  private f32!: Float32Array;
  private f64!: Float64Array;
  private rowsAt: number | undefined;

  constructor(
    readonly backend: "wasm-simd128" | "wasm-relaxed",
    module: WebAssembly.Module,
    options: WasmKernelOptions,
  ) {
    this.threads = Number.isFinite(options.threads) ? Math.max(1, Math.floor(options.threads)) : 1;
    this.gemmMinTokens = options.gemmMinTokens ?? 4;
    this.chunkMacs = options.chunkMacs ?? CHUNK_MACS;
    this.parallelMinMacs = options.parallelMinMacs ?? PARALLEL_MACS;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(HEAP_AT / PAGE) + 16, maximum: MAX_PAGES, shared: true });
    this.buffer = this.memory.buffer;
    this.views();
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.exports = instance.exports as unknown as KernelExports;
    this.dispatcher = new Dispatcher(this.memory, this.exports.work, module, this.threads, options);
  }

  get bytes(): number {
    return this.heldBytes;
  }

  ternary(source: TernaryWeightSource): TernaryMatrix {
    const { rows, cols } = source;
    if (!(Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows > 0 && cols > 0)) {
      throw new B158Error("E_INTERNAL", `ternary: shape [${rows}, ${cols}] is not a positive integer shape`);
    }
    switch (source.kind) {
      case "i2_s":
        if (cols % source.blockSize !== 0) return this.relay(decodeTernary(source), "i2_s re-laid");
        return this.i2s(source);
      case "tq2_0":
        return this.tq2(source);
      case "codes":
        return this.codes(source);
      case "threshold16":
        return this.threshold16(source);
    }
  }

  async loadTernary(input: TernaryWeightInput): Promise<TernaryMatrix> {
    if ((input.kind !== "i2_s" && input.kind !== "tq2_0") || input.payload instanceof Uint8Array) return this.ternary(input as TernaryWeightSource);
    const { rows, cols, payload } = input;
    const direct = Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows > 0 && cols > 0 && cols % (input.kind === "i2_s" ? input.blockSize : 256) === 0;
    if (!direct) return this.ternary(await ternaryInMemory(input));
    if (input.kind === "i2_s") {
      const n = rows * cols;
      if (payload.byteLength < n / 4 + 4) throw new B158Error("E_PAYLOAD_SIZE", `i2_s payload for [${rows}, ${cols}] is ${payload.byteLength} bytes; expected at least ${n / 4 + 4}`);
      const weights = this.alloc(n / 4 + 16);
      await this.readInto(payload, n / 4 + 4, weights);
      return this.i2sAt(input, weights);
    }
    const size = ((rows * cols) / 256) * 66;
    if (payload.byteLength < size) throw new B158Error("E_PAYLOAD_SIZE", `tq2_0 payload for [${rows}, ${cols}] is ${payload.byteLength} bytes; expected ${size}`);
    const weights = this.alloc(size + 16);
    await this.readInto(payload, size, weights);
    return this.tq2At(input, weights);
  }

  async loadDense(input: DenseWeightInput): Promise<DenseMatrix> {
    if (!("payload" in input)) return this.dense(input);
    const { rows, cols, kind, payload } = input;
    if (!(Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows > 0 && cols > 0)) {
      throw new B158Error("E_INTERNAL", `dense: shape [${rows}, ${cols}] is not a positive integer shape`);
    }
    const elementBytes = kind === "f32" ? 4 : 2;
    const paddedCols = roundUp(cols, 16);
    if (payload.byteLength < rows * cols * elementBytes) throw new B158Error("E_PAYLOAD_SIZE", `dense ${kind} matrix [${rows}, ${cols}] has ${Math.floor(payload.byteLength / elementBytes)} values; expected ${rows * cols}`);
    if (input.quantize === "int8-rows") return this.denseInt8From(input, paddedCols);
    // rows padded to 16 columns: small matrices, read whole
    if (paddedCols !== cols) return this.dense(await denseInMemory(input));
    const rowBytes = cols * elementBytes;
    const weights = this.alloc(rows * rowBytes);
    await this.readInto(payload, rows * rowBytes, weights);
    const layout: DenseLayoutId = kind === "f32" ? DenseLayout.f32 : kind === "f16" ? DenseLayout.f16 : DenseLayout.bf16;
    if (kind === "f16" && this.exports.f16_nonfinite(weights, rows * cols) !== 0) {
      // Inf or NaN in f16: kept as exact f32 (the SIMD f16 trick covers finite values only); the
      // f16 copy's memory is not reclaimed, which only such rare matrices pay
      const bits = this.u8.slice(weights, weights + rows * rowBytes);
      return this.dense({ kind: "f16", rows, cols, bits: new Uint16Array(bits.buffer) });
    }
    return this.denseRecord(input, layout, kind, weights, rowBytes, paddedCols, 0, rows * rowBytes);
  }

  release(): void {
    this.matrices = new WeakSet();
    this.plans = new WeakMap();
    this.caches = new WeakSet();
    this.top = HEAP_AT;
    this.heldBytes = 0;
    this.frame = { at: 0, size: 0 };
    this.scratch = { at: 0, size: 0 };
    this.stage = { at: 0, size: 0 };
    this.rowsAt = undefined;
  }

  dense(source: DenseWeightSource): DenseMatrix {
    const { rows, cols } = source;
    if (!(Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows > 0 && cols > 0)) {
      throw new B158Error("E_INTERNAL", `dense: shape [${rows}, ${cols}] is not a positive integer shape`);
    }
    const n = rows * cols;
    const available = source.kind === "f32" ? source.values.length : source.bits.length;
    if (available < n) throw new B158Error("E_PAYLOAD_SIZE", `dense ${source.kind} matrix [${rows}, ${cols}] has ${available} values; expected ${n}`);
    const paddedCols = roundUp(cols, 16);
    if (source.quantize === "int8-rows") return this.denseInt8(source, paddedCols);
    let layout: DenseLayoutId = source.kind === "f32" ? DenseLayout.f32 : source.kind === "f16" ? DenseLayout.f16 : DenseLayout.bf16;
    if (source.kind === "f16" && this.f16HasNonFinite(source.bits, n)) layout = DenseLayout.f32;
    const elementBytes = layout === DenseLayout.f32 ? 4 : 2;
    const rowBytes = paddedCols * elementBytes;
    const weights = this.alloc(rows * rowBytes);
    if (layout === DenseLayout.f32 && source.kind === "f16") {
      // Inf or NaN in f16: kept as exact f32 (the SIMD f16 trick covers finite values only)
      const f32 = this.f32;
      for (let r = 0; r < rows; r++) {
        halfBitsToFloat32(source.bits.subarray(r * cols, (r + 1) * cols), "f16", f32.subarray((weights + r * rowBytes) / 4, (weights + r * rowBytes) / 4 + cols));
      }
    } else if (source.kind === "f32") {
      this.copyRows(new Uint8Array(source.values.buffer, source.values.byteOffset, n * 4), rows, cols * 4, weights, rowBytes);
    } else {
      this.copyRows(new Uint8Array(source.bits.buffer, source.bits.byteOffset, n * 2), rows, cols * 2, weights, rowBytes);
    }
    const format = layout === DenseLayout.f32 ? "f32" : source.kind;
    return this.denseRecord(source, layout, format, weights, rowBytes, paddedCols, 0, rows * rowBytes);
  }

  linear(weights: readonly TernaryMatrix[], x: Float32Array, tokens: number, outs: readonly Float32Array[], mode: ActivationMode): void {
    for (const w of weights) this.own(w);
    if (weights.length === 0 || tokens === 0) return;
    this.checkCall(x, tokens, weights[0]!.cols, outs, weights);
    const plan = this.linearPlan(weights as readonly WasmTernary[], tokens, mode);
    const T = tokens;
    const K = plan.K;
    const base = this.frameBase(plan.frameBytes);
    const ex = this.exports;
    const f32 = this.f32; // after frameBase, which may grow the memory
    const xAt = base + plan.x;
    f32.set(x.subarray(0, T * K), xAt / 4);
    const qAt = base + plan.q;
    const sAt = base + plan.s;
    if (!plan.float) for (let t = 0; t < T; t++) f32[sAt / 4 + t] = ex.act_quantize(xAt + t * K * 4, K, qAt + t * plan.Kq);
    for (const geo of plan.geometries) {
      if (plan.float) {
        for (let t = 0; t < T; t++) ex.act_pad_f64(xAt + t * K * 4, K, geo.g, geo.gp, base + geo.act + t * geo.kp * 8);
        continue;
      }
      const qp = base + geo.qp;
      if (geo.padded) for (let t = 0; t < T; t++) ex.act_pad(qAt + t * plan.Kq, K, geo.g, geo.gp, qp + t * geo.qpStride);
      if (!plan.byteActs) for (let t = 0; t < T; t++) ex.act_split16(qp + t * geo.qpStride, geo.kp, base + geo.split + t * geo.kp * 2);
      for (const tele of plan.telescoped) {
        if (plan.geometries[tele.geometry] !== geo) continue;
        const telescope = ex[`act_telescope_${tele.name}`]!;
        for (let t = 0; t < T; t++) telescope(base + geo.split + t * geo.kp * 2, geo.kp, base + tele.at + t * geo.kp * 2);
      }
      if (plan.gemm) {
        const from = base + geo.split;
        const stride = geo.kp * 2;
        for (let g = 0; g * 4 < T; g++) ex.act_interleave4(from + 4 * g * stride, stride, geo.vectors, Math.min(4, T - 4 * g), base + geo.act + g * geo.vectors * 64);
      }
    }
    for (const sums of plan.blockSums) {
      const geo = plan.geometries[sums.geometry]!;
      for (let t = 0; t < T; t++) ex.act_block_sums(base + geo.qp + t * geo.qpStride, sums.blocks, sums.gp, base + sums.at + t * sums.blocks * 4);
    }
    this.writeTasks(plan.tasks, base);
    this.runDispatch(plan.tasks.count, plan.chunks, plan.scratchBytes, plan.macs);
    for (let i = 0; i < outs.length && i < plan.outs.length; i++) {
      const at = (base + plan.outs[i]!) / 4;
      outs[i]!.set(this.f32.subarray(at, at + T * weights[i]!.rows));
    }
  }

  /**
   * What a linear() call of these matrices, token count and mode does, worked out once: the frame's
   * layout (x; int8 activations and scales; per block geometry the prepared activations: padded q,
   * split i16 for the portable kernels, four tokens interleaved for the GEMMs, f64 for float mode;
   * per geometry and block size the block sums of q; the outputs) and the dispatch's task words.
   * Offsets are from the frame's start. A forward pass repeats the same calls, so its plans are
   * cached by the weights array (the runtime passes the same one every time).
   */
  private linearPlan(list: readonly WasmTernary[], T: number, mode: ActivationMode): LinearPlan {
    let byCall = this.plans.get(list);
    if (byCall === undefined) this.plans.set(list, (byCall = new Map()));
    const key = T * 2 + (mode === "float" ? 1 : 0);
    const cached = byCall.get(key);
    if (cached !== undefined) return cached;
    if (list.length > MAX_TASKS) throw new B158Error("E_INTERNAL", `linear: ${list.length} matrices in one call; at most ${MAX_TASKS}`);
    const K = list[0]!.cols;
    for (const w of list) if (w.cols !== K) throw new B158Error("E_INTERNAL", `linear: matrices of ${w.cols} and ${K} columns share one input`);
    const Kq = roundUp(K, 64);
    const float = mode === "float";
    const relaxed = this.backend === "wasm-relaxed";
    const gemm = T >= this.gemmMinTokens;
    const byteActs = relaxed && !gemm;
    let frameBytes = 0;
    const take = (bytes: number): number => {
      const at = frameBytes;
      frameBytes += roundUp(bytes, 64);
      return at;
    };
    const x = take(T * K * 4);
    const q = float ? 0 : take(T * Kq);
    const s = float ? 0 : take(T * 4);
    const geometries: LinearPlan["geometries"][number][] = [];
    const geometryOf = new Map<string, number>();
    for (const w of list) {
      if (geometryOf.has(geometryKey(w))) continue;
      geometryOf.set(geometryKey(w), geometries.length);
      const natural = w.group === w.paddedGroup;
      const [g, gp, kp] = [natural ? K : w.group, natural ? K : w.paddedGroup, w.paddedCols];
      if (float) {
        geometries.push({ g, gp, kp, padded: false, qp: 0, qpStride: 0, split: 0, act: take(T * kp * 8), stride: kp * 8, vectors: 0 });
        continue;
      }
      const padded = g !== gp;
      const qp = padded ? take(T * kp) : q;
      const qpStride = padded ? kp : Kq;
      const split = byteActs ? 0 : take(T * kp * 2);
      const vectors = kp / 8;
      const interleaved = gemm ? take(Math.ceil(T / 4) * 4 * kp * 2) : 0;
      const [act, stride] = gemm ? [interleaved, vectors * 64] : byteActs ? [qp, qpStride] : [split, kp * 2];
      geometries.push({ g, gp, kp, padded, qp, qpStride, split, act, stride, vectors });
    }
    const blockSums: LinearPlan["blockSums"][number][] = [];
    const sumsOf = new Map<string, number>();
    // the GEMM sums t * q directly; the GEMVs sum c * q and subtract the block sums of q
    if (!float && !gemm) {
      for (const w of list) {
        const key = `${geometryKey(w)}:${w.paddedGroup}`;
        if (sumsOf.has(key)) continue;
        sumsOf.set(key, blockSums.length);
        const blocks = w.paddedCols / w.paddedGroup;
        blockSums.push({ geometry: geometryOf.get(geometryKey(w))!, blocks, gp: w.paddedGroup, at: take(T * blocks * 4) });
      }
    }
    const telescoped: LinearPlan["telescoped"][number][] = [];
    const telescopedOf = new Map<string, number>();
    if (!float && !gemm && !relaxed) {
      for (const w of list) {
        const key = `${geometryKey(w)}|${w.layout}`;
        if (telescopedOf.has(key)) continue;
        telescopedOf.set(key, telescoped.length);
        const geometry = geometryOf.get(geometryKey(w))!;
        telescoped.push({ geometry, name: VARIANT_NAME[w.layout], at: take(T * geometries[geometry]!.kp * 2) });
      }
    }
    const outs = list.map((w) => take(T * w.rows * 4));
    const tasks: Task[] = [];
    let scratchBytes = 0;
    list.forEach((w, i) => {
      const geo = geometries[geometryOf.get(geometryKey(w))!]!;
      const blocks = w.paddedCols / w.paddedGroup;
      let kernel: number;
      let tile = 2;
      if (float) {
        kernel = KERNEL.ternaryFloat + w.layout;
        scratchBytes = Math.max(scratchBytes, w.paddedCols * 8);
      } else if (gemm) {
        kernel = KERNEL.ternaryGemm + w.layout;
        scratchBytes = Math.max(scratchBytes, gemmScratchBytes(w.paddedCols, blocks));
        tile = 4;
      } else {
        kernel = (relaxed ? KERNEL.ternaryGemvRelaxed : KERNEL.ternaryGemv) + w.layout;
        tile = relaxed ? RELAXED_GEMV_ROWS : PORTABLE_GEMV_ROWS;
      }
      const sums = float || gemm ? undefined : blockSums[sumsOf.get(`${geometryKey(w)}:${w.paddedGroup}`)!]!;
      const tele = telescopedOf.get(`${geometryKey(w)}|${w.layout}`);
      tasks.push({
        kernel,
        matrix: w.record,
        rows: w.rows,
        rowsPerChunk: this.rowsPerChunk(w.rows, w.paddedCols * T, tile),
        tokens: T,
        act: tele === undefined ? geo.act : telescoped[tele]!.at,
        actStride: geo.stride,
        ...(float ? {} : { actScale: s }),
        ...(sums === undefined ? {} : { qsum: sums.at, qsumStride: blocks * 4 }),
        out: outs[i]!,
        outStride: w.rows * 4,
      });
    });
    const words = taskWords(tasks, ["act", "qsum", "actScale", "out"]);
    const plan: LinearPlan = { K, Kq, float, byteActs, gemm, frameBytes, x, q, s, geometries, telescoped, blockSums, outs, tasks: words, chunks: words.chunks, scratchBytes, macs: list.reduce((n, w) => n + w.rows * w.paddedCols * T, 0) };
    byCall.set(key, plan);
    return plan;
  }

  denseLinear(weight: DenseMatrix, x: Float32Array, tokens: number, out: Float32Array): void {
    const w = this.own(weight) as WasmDense;
    if (tokens === 0) return;
    const T = tokens;
    const K = w.cols;
    const Kp = w.paddedCols;
    this.checkCall(x, tokens, K, [out], [w]);
    const int8 = w.layout === DenseLayout.int8Rows;
    const gemm = !int8 && T >= this.gemmMinTokens;
    const [xAt, qAt, sAt, actAt, outAt] = this.frameAlloc([T * Kp * 4, int8 ? T * Kp : 0, T * 4, int8 ? T * Kp * 2 : 0, T * w.rows * 4]) as [number, number, number, number, number];
    let act = xAt;
    let actStride = Kp * 4;
    let flags = 0;
    const f32 = this.f32;
    if (int8) {
      for (let t = 0; t < T; t++) {
        f32.set(x.subarray(t * K, (t + 1) * K), xAt / 4 + t * Kp);
        f32[sAt / 4 + t] = this.exports.act_quantize(xAt + t * Kp * 4, K, qAt + t * Kp);
        this.u8.fill(0, qAt + t * Kp + K, qAt + (t + 1) * Kp);
        this.exports.act_widen16(qAt + t * Kp, Kp, actAt + t * Kp * 2);
      }
      act = actAt;
      actStride = Kp * 2;
    } else {
      // f16 weights are read as w * 2^-112; x * 2^112 is exact while |x| < 2^15 (and finite); the
      // GEMM decodes rows to exact f32 instead
      let prescale = w.layout === DenseLayout.f16 && !gemm;
      if (prescale) for (let i = 0; i < T * K; i++) if (!(Math.abs(x[i]!) < 32768)) prescale = false;
      const factor = prescale ? 2 ** 112 : 1;
      for (let t = 0; t < T; t++) {
        const row = xAt / 4 + t * Kp;
        if (factor === 1) f32.set(x.subarray(t * K, (t + 1) * K), row);
        else for (let k = 0; k < K; k++) f32[row + k] = x[t * K + k]! * factor;
        f32.fill(0, row + K, row + Kp);
      }
      if (prescale) flags = DENSE_PRESCALED;
    }
    const task: Task = {
      kernel: (gemm ? KERNEL.denseGemm : KERNEL.dense) + w.layout,
      matrix: w.record,
      rows: w.rows,
      rowsPerChunk: this.rowsPerChunk(w.rows, Kp * T, gemm ? 2 : 4),
      tokens: T,
      act,
      actStride,
      actScale: sAt,
      out: outAt,
      outStride: w.rows * 4,
      flags,
    };
    // the GEMM decodes two rows at a time to f32 in thread scratch
    this.dispatch([task], gemm ? 2 * Kp * 4 : 0, w.rows * Kp * T);
    out.set(this.f32.subarray(outAt / 4, outAt / 4 + T * w.rows));
  }

  denseRow(weight: DenseMatrix, row: number, out: Float32Array): void {
    const w = this.own(weight) as WasmDense;
    if (!(Number.isInteger(row) && row >= 0 && row < w.rows)) throw new B158Error("E_INTERNAL", `denseRow: row ${row} is outside 0..${w.rows - 1}`);
    const base = w.weights + row * w.rowBytes;
    const K = w.cols;
    switch (w.layout) {
      case DenseLayout.f32:
        out.set(this.f32.subarray(base / 4, base / 4 + K));
        return;
      case DenseLayout.f16:
      case DenseLayout.bf16:
        halfBitsToFloat32(new Uint16Array(this.buffer, base, K), w.layout === DenseLayout.f16 ? "f16" : "bf16", out.subarray(0, K));
        return;
      case DenseLayout.int8Rows: {
        const ws = this.f32[(w.scales >>> 2) + row]!;
        const q = new Int8Array(this.buffer, base, K);
        for (let k = 0; k < K; k++) out[k] = q[k]! * ws;
        return;
      }
    }
  }

  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, width: number, eps: number, out: Float32Array): void {
    checkRows(x, weight, rows, width, out);
    if (rows === 0) return;
    const [xAt, wAt] = this.frameAlloc([rows * width * 4, width * 4]) as [number, number];
    this.f32.set(x.subarray(0, rows * width), xAt / 4);
    this.f32.set(weight.subarray(0, width), wAt / 4);
    const rec = this.rowsRecord(rows, width, wAt);
    this.f64[(rec + ROWS.eps) / 8] = eps;
    // a row is one float64 chain of `width` adds, then the products: about 3 x width operations
    const task: Task = { kernel: KERNEL.rmsNorm, matrix: rec, rows, rowsPerChunk: Math.max(1, Math.floor(this.chunkMacs / (3 * width))), tokens: rows, act: xAt, actStride: width * 4, out: xAt, outStride: width * 4 };
    this.dispatch([task], 0, 3 * rows * width);
    out.set(this.f32.subarray(xAt / 4, xAt / 4 + rows * width));
  }

  relu2Gate(gate: Float32Array, up: Float32Array, n: number): void {
    checkGate(gate, up, n);
    if (n === 0) return;
    const [gAt, uAt] = this.frameAlloc([n * 4, n * 4]) as [number, number];
    this.f32.set(gate.subarray(0, n), gAt / 4);
    this.f32.set(up.subarray(0, n), uAt / 4);
    const width = 4096;
    const rows = Math.ceil(n / width);
    const rec = this.rowsRecord(rows, width, uAt);
    this.i32[(rec + ROWS.count) / 4] = n;
    const task: Task = { kernel: KERNEL.relu2Gate, matrix: rec, rows, rowsPerChunk: Math.max(1, Math.floor(this.chunkMacs / (4 * width))), tokens: 1, act: gAt, actStride: 0, out: gAt, outStride: 0 };
    this.dispatch([task], 0, 4 * n);
    gate.set(this.f32.subarray(gAt / 4, gAt / 4 + n));
  }

  /** The element-wise calls' record (one, rewritten every call). */
  private rowsRecord(rows: number, width: number, other: number): number {
    this.rowsAt ??= this.alloc(ROWS.size);
    const i32 = this.i32;
    i32[(this.rowsAt + ROWS.rows) / 4] = rows;
    i32[(this.rowsAt + ROWS.width) / 4] = width;
    i32[(this.rowsAt + ROWS.other) / 4] = other;
    return this.rowsAt;
  }

  attentionCache(shape: { layers: number; positions: number; kvHeads: number; headDim: number }): AttentionCache {
    checkCacheShape(shape);
    const { layers, positions, kvHeads, headDim } = shape;
    const stride = roundUp(positions, 16);
    const paddedDim = roundUp(headDim, 4);
    const half = kvHeads * paddedDim * stride * 4;
    const at = this.alloc(layers * 2 * half);
    // touched now, at load: first touches of fresh pages made a prompt's attention 3-4x slower
    this.u8.fill(0, at, at + layers * 2 * half);
    const record = this.alloc(ATTENTION.size);
    const cache: WasmCache = { layers, positions, kvHeads, headDim, bytes: layers * 2 * half, at, half, stride, paddedDim, record };
    this.caches.add(cache);
    return cache;
  }

  attention(cache: AttentionCache, layer: number, q: Float32Array, k: Float32Array, v: Float32Array, start: number, tokens: number, heads: number, scale: number, out: Float32Array): void {
    if (!this.caches.has(cache)) throw new B158Error("E_INTERNAL", "an attention cache from another kernel context was passed in");
    const c = cache as WasmCache;
    checkAttention(c, layer, q, k, v, start, tokens, heads, out);
    const { kvHeads: KV, headDim: D, paddedDim: Dp, stride } = c;
    const width = tokens * heads * Dp;
    const [qAt, outAt] = this.frameAlloc([width * 4, width * 4]) as [number, number];
    const f32 = this.f32; // after frameAlloc, which may grow the memory
    const keys = c.at + layer * 2 * c.half;
    const values = keys + c.half;
    // a key is a column of the transposed cache, a value a row; the padding dimensions hold zeros
    for (let t = 0; t < tokens; t++) {
      for (let g = 0; g < KV; g++) {
        const from = (t * KV + g) * D;
        const column = keys / 4 + g * Dp * stride + start + t;
        for (let i = 0; i < D; i++) f32[column + i * stride] = k[from + i]!;
        for (let i = D; i < Dp; i++) f32[column + i * stride] = 0;
        const row = values / 4 + (g * stride + start + t) * Dp;
        f32.set(v.subarray(from, from + D), row);
        f32.fill(0, row + D, row + Dp);
      }
    }
    if (Dp === D) f32.set(q.subarray(0, width), qAt / 4);
    else {
      for (let r = 0; r < tokens * heads; r++) {
        f32.set(q.subarray(r * D, (r + 1) * D), qAt / 4 + r * Dp);
        f32.fill(0, qAt / 4 + r * Dp + D, qAt / 4 + (r + 1) * Dp);
      }
    }
    const i32 = this.i32;
    const rec = c.record / 4;
    i32[rec + ATTENTION.rows / 4] = tokens * KV;
    i32[rec + ATTENTION.keys / 4] = keys;
    i32[rec + ATTENTION.values / 4] = values;
    i32[rec + ATTENTION.positionStride / 4] = stride;
    i32[rec + ATTENTION.kvHeads / 4] = KV;
    i32[rec + ATTENTION.paddedDim / 4] = Dp;
    i32[rec + ATTENTION.group / 4] = heads / KV;
    i32[rec + ATTENTION.start / 4] = start;
    f32[rec + ATTENTION.scale / 4] = scale;
    // one row per (token, kv head): about group x positions x 2 x Dp multiply-adds
    const rowMacs = (heads / KV) * (start + tokens) * 2 * Dp;
    const task: Task = {
      kernel: KERNEL.attention,
      matrix: c.record,
      rows: tokens * KV,
      rowsPerChunk: Math.max(1, Math.floor(this.chunkMacs / rowMacs)),
      tokens,
      act: qAt,
      actStride: heads * Dp * 4,
      out: outAt,
      outStride: heads * Dp * 4,
    };
    this.dispatch([task], stride * 4, tokens * KV * rowMacs);
    if (Dp === D) out.set(f32.subarray(outAt / 4, outAt / 4 + width));
    else for (let r = 0; r < tokens * heads; r++) out.set(f32.subarray(outAt / 4 + r * Dp, outAt / 4 + r * Dp + D), r * D);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Row chunks each thread has run (index 0: the calling thread; up to 8 threads). */
  chunksRun(): number[] {
    return Array.from({ length: Math.min(this.threads, 8) }, (_, tid) => this.dispatcher.chunksRun(tid));
  }

  /** Tests only: the next product runs a kernel that traps, or (tid > 0) that worker exits abruptly. */
  injectFault(kind: "trap" | { exitThread: number }): void {
    if (kind === "trap") this.faultNext = true;
    else this.dispatcher.injectExit(kind.exitThread);
  }

  // ---- loading ----

  private i2s(source: Extract<TernaryWeightSource, { kind: "i2_s" }>): TernaryMatrix {
    const { rows, cols, payload } = source;
    const n = rows * cols;
    if (payload.byteLength < n / 4 + 4) throw new B158Error("E_PAYLOAD_SIZE", `i2_s payload for [${rows}, ${cols}] is ${payload.byteLength} bytes; expected at least ${n / 4 + 4}`);
    const weights = this.alloc(n / 4 + 16);
    this.u8.set(payload.subarray(0, n / 4 + 4), weights);
    return this.i2sAt(source, weights);
  }

  /** An I2_S payload already at `weights`: checked for code 3, then recorded. */
  private i2sAt(shape: { rows: number; cols: number; blockSize: 128 | 64 }, weights: number): TernaryMatrix {
    const { rows, cols, blockSize } = shape;
    const n = rows * cols;
    // the reference's decoding throws its precise E_PACKED_CODE (the element)
    if (this.exports.has_code3(weights, 1, n / 4, 0) !== 0) decodeTernary({ kind: "i2_s", rows, cols, blockSize, payload: this.u8.slice(weights, weights + n / 4 + 4) });
    const layout = blockSize === 128 ? TernaryLayout.i2s128 : TernaryLayout.i2s64;
    return this.ternaryRecord(shape, layout, "i2_s", { weights, rowBytes: cols / 4, blockBytes: cols / 4, group: cols, paddedGroup: cols, scales: weights + n / 4, scaleRow: 0, scaleBlock: 0 }, n / 4 + 4);
  }

  private tq2(source: Extract<TernaryWeightSource, { kind: "tq2_0" }>): TernaryMatrix {
    const { rows, cols, payload } = source;
    if (cols % 256 !== 0) throw new B158Error("E_LAYOUT_SHAPE", `tq2_0 needs cols % 256 == 0; cols = ${cols} is not`);
    const size = ((rows * cols) / 256) * 66;
    if (payload.byteLength < size) throw new B158Error("E_PAYLOAD_SIZE", `tq2_0 payload for [${rows}, ${cols}] is ${payload.byteLength} bytes; expected ${size}`);
    const weights = this.alloc(size + 16);
    this.u8.set(payload.subarray(0, size), weights);
    return this.tq2At(source, weights);
  }

  private tq2At(shape: { rows: number; cols: number }, weights: number): TernaryMatrix {
    const { rows, cols } = shape;
    const blocks = (rows * cols) / 256;
    const size = blocks * 66;
    if (this.exports.has_code3(weights, blocks, 64, 66) !== 0) decodeTernary({ kind: "tq2_0", rows, cols, payload: this.u8.slice(weights, weights + size) });
    const rowBytes = (cols / 256) * 66;
    return this.ternaryRecord(shape, TernaryLayout.tq2, "tq2_0", { weights, rowBytes, blockBytes: 66, group: 256, paddedGroup: 256, scales: weights + 64, scaleRow: rowBytes, scaleBlock: 66 }, size);
  }

  /** `length` bytes of a payload into memory at `at`, in pieces. */
  private async readInto(payload: PayloadReader, length: number, at: number): Promise<void> {
    for (let done = 0; done < length; done += READ_BYTES) {
      const n = Math.min(READ_BYTES, length - done);
      await payload.read(done, new Uint8Array(this.memory.buffer, at + done, n));
    }
  }

  private codes(source: Extract<TernaryWeightSource, { kind: "codes" }>): TernaryMatrix {
    const { rows, cols } = source;
    if (source.codes.length < rows * cols) throw new B158Error("E_PAYLOAD_SIZE", `codes for [${rows}, ${cols}] hold ${source.codes.length} values; expected ${rows * cols}`);
    const { group, scales } = this.scaleGroups(source, source.scales);
    return this.relayCodes(source, this.codesFill(source.codes, cols), group, scales, source.scales.granularity, "codes");
  }

  /** 16-bit patterns thresholded to codes in the staging area (wasm SIMD), then re-laid as codes are. */
  private threshold16(source: Extract<TernaryWeightSource, { kind: "threshold16" }>): TernaryMatrix {
    const { rows, cols, bits, threshold } = source;
    if (bits.length < rows * cols) throw new B158Error("E_PAYLOAD_SIZE", `threshold16 bits for [${rows}, ${cols}] hold ${bits.length} values; expected ${rows * cols}`);
    if (!(Number.isInteger(threshold) && threshold >= 0 && threshold <= 0x7fff)) throw new B158Error("E_INTERNAL", `threshold ${threshold} is not a 15-bit magnitude`);
    const { group, scales } = this.scaleGroups(source, source.scales);
    const fill = (r0: number, n: number, stage: number, extra: number): void => {
      this.u8.set(new Uint8Array(bits.buffer, bits.byteOffset + r0 * cols * 2, n * cols * 2), extra);
      this.exports.threshold_codes(extra, n * cols, threshold, stage);
    };
    return this.relayCodes(source, fill, group, scales, source.scales.granularity, "codes");
  }

  /** The group size and the scales a ScaleSpec gives, checked. */
  private scaleGroups(shape: { rows: number; cols: number }, spec: ScaleSpec): { group: number; scales: Float32Array } {
    const { rows, cols } = shape;
    let group = cols;
    let scales: Float32Array;
    if (spec.granularity === "tensor") scales = Float32Array.of(spec.scale);
    else if (spec.granularity === "row") scales = spec.scales.subarray(0, rows);
    else {
      group = spec.groupSize;
      if (!(Number.isInteger(group) && group > 0 && cols % group === 0)) throw new B158Error("E_INTERNAL", `group size ${group} does not divide ${cols} columns`);
      scales = spec.scales.subarray(0, rows * (cols / group));
    }
    const expectedScales = spec.granularity === "tensor" ? 1 : spec.granularity === "row" ? rows : rows * (cols / group);
    if (scales.length < expectedScales) throw new B158Error("E_INTERNAL", `${spec.granularity} scales: ${scales.length} given, ${expectedScales} needed`);
    return { group, scales };
  }

  /** Fills the staging area with rows of int8 codes (and names the first bad element of a row the kernel flags). */
  private codesFill(codes: Int8Array, cols: number): StageFill {
    const fill: StageFill = (r0, n, stage) => this.u8.set(new Uint8Array(codes.buffer, codes.byteOffset + r0 * cols, n * cols), stage);
    fill.badRow = (row) => {
      for (let k = 0; k < cols; k++) {
        const c = codes[row * cols + k]!;
        if (c !== -1 && c !== 0 && c !== 1) throw new B158Error("E_NOT_TERNARY", `weight element ${row * cols + k} is ${c}, not -1, 0 or 1`);
      }
    };
    return fill;
  }

  /** Codes the reference decoded (a layout this backend does not read directly) re-laid with their scales. */
  private relay(ref: ReturnType<typeof decodeTernary>, format: string): TernaryMatrix {
    const perRow = ref.blockSize === ref.cols;
    return this.relayCodes(ref, this.codesFill(ref.codes, ref.cols), ref.blockSize, ref.blockScales, perRow ? "row" : "group", format);
  }

  /** Rows of int8 codes, put in the staging area `STAGE_BYTES` at a time by `fill`, re-laid into b158's I2_S order. */
  private relayCodes(shape: { rows: number; cols: number }, fill: StageFill, group: number, scales: Float32Array, granularity: "tensor" | "row" | "group", format: string): TernaryMatrix {
    const { rows, cols } = shape;
    const paddedGroup = roundUp(group, 64);
    const unit = paddedGroup % 128 === 0 ? 128 : 64;
    const blocks = cols / group;
    const rowBytes = (blocks * paddedGroup) / 4;
    const weights = this.alloc(rows * rowBytes + 16);
    const scalesAt = this.alloc(scales.length * 4);
    this.f32.set(scales, scalesAt / 4);
    const rowsPerStage = Math.max(1, Math.floor((STAGE_BYTES - paddedGroup) / cols));
    // codes, the re-lay's group buffer, then room for what `fill` reads from (16-bit patterns)
    const extraAt = roundUp(STAGE_BYTES + cols + paddedGroup, 64);
    const stage = this.stageArea(extraAt - STAGE_BYTES + 2 * rowsPerStage * cols);
    for (let r0 = 0; r0 < rows; r0 += rowsPerStage) {
      const n = Math.min(rowsPerStage, rows - r0);
      fill(r0, n, stage, stage + extraAt);
      const bad = this.exports.relay_codes(stage, n, cols, group, paddedGroup, unit, weights + r0 * rowBytes, stage + n * cols);
      if (bad >= 0) {
        fill.badRow?.(r0 + bad);
        throw new B158Error("E_NOT_TERNARY", `row ${r0 + bad} holds a value that is not -1, 0 or 1`);
      }
    }
    const scaleRow = granularity === "tensor" ? 0 : granularity === "row" ? 4 : blocks * 4;
    const scaleBlock = granularity === "group" ? 4 : 0;
    const layout = unit === 128 ? TernaryLayout.i2s128 : TernaryLayout.i2s64;
    return this.ternaryRecord(shape, layout, `b158-i2s${unit}${paddedGroup === group ? "" : `-padded${paddedGroup}`}${format === "codes" ? "" : ` (${format})`}`, { weights, rowBytes, blockBytes: paddedGroup / 4, group, paddedGroup, scales: scalesAt, scaleRow, scaleBlock }, rows * rowBytes + scales.length * 4);
  }

  private ternaryRecord(
    shape: { rows: number; cols: number },
    layout: TernaryLayoutId,
    format: string,
    at: { weights: number; rowBytes: number; blockBytes: number; group: number; paddedGroup: number; scales: number; scaleRow: number; scaleBlock: number },
    bytes: number,
  ): WasmTernary {
    const { rows, cols } = shape;
    const unit = layout === TernaryLayout.i2s64 ? 64 : 128;
    const blocks = cols / at.group;
    const paddedCols = blocks * at.paddedGroup;
    const record = this.alloc(TERNARY.size);
    const f = (offset: number, value: number) => (this.i32[(record + offset) / 4] = value);
    f(TERNARY.layout, layout);
    f(TERNARY.rows, rows);
    f(TERNARY.cols, cols);
    f(TERNARY.weights, at.weights);
    f(TERNARY.rowBytes, at.rowBytes);
    f(TERNARY.blockBytes, at.blockBytes);
    f(TERNARY.blocks, blocks);
    f(TERNARY.unitsPerBlock, at.paddedGroup / unit);
    f(TERNARY.paddedBlock, at.paddedGroup);
    f(TERNARY.scales, at.scales);
    f(TERNARY.scaleRowBytes, at.scaleRow);
    f(TERNARY.scaleBlockBytes, at.scaleBlock);
    f(TERNARY.paddedCols, paddedCols);
    this.heldBytes += bytes;
    const matrix: WasmTernary = { rows, cols, format, bytes, record, layout, group: at.group, paddedGroup: at.paddedGroup, paddedCols };
    this.matrices.add(matrix);
    return matrix;
  }

  private denseInt8(source: DenseWeightSource, paddedCols: number): DenseMatrix {
    const bytes = source.kind === "f32" ? new Uint8Array(source.values.buffer, source.values.byteOffset, source.rows * source.cols * 4) : new Uint8Array(source.bits.buffer, source.bits.byteOffset, source.rows * source.cols * 2);
    const target = this.int8Target(source, paddedCols);
    for (let r0 = 0; r0 < source.rows; r0 += target.rowsPerStage) {
      const view = target.stageView(r0);
      view.set(bytes.subarray(target.byteOffset(r0), target.byteOffset(r0) + view.byteLength));
      target.quantize(r0);
    }
    return target.record();
  }

  /** The int8-rows copy of rows still in their file, read a staging area at a time. */
  private async denseInt8From(source: { kind: "f32" | "f16" | "bf16"; rows: number; cols: number; payload: PayloadReader }, paddedCols: number): Promise<DenseMatrix> {
    const target = this.int8Target(source, paddedCols);
    for (let r0 = 0; r0 < source.rows; r0 += target.rowsPerStage) {
      await source.payload.read(target.byteOffset(r0), target.stageView(r0));
      target.quantize(r0);
    }
    return target.record();
  }

  /** Room for an int8-rows matrix, and its staging: rows go to stageView(r0), then quantize(r0). */
  private int8Target(source: { kind: "f32" | "f16" | "bf16"; rows: number; cols: number }, paddedCols: number) {
    const { rows, cols } = source;
    const weights = this.alloc(rows * paddedCols);
    const scales = this.alloc(rows * 4);
    const kind = source.kind === "f32" ? 0 : source.kind === "f16" ? 1 : 2;
    const rowBytes = cols * (kind === 0 ? 4 : 2);
    const rowsPerStage = Math.max(1, Math.floor(STAGE_BYTES / rowBytes));
    const stage = this.stageArea(rowBytes);
    const count = (r0: number) => Math.min(rowsPerStage, rows - r0);
    return {
      rowsPerStage,
      byteOffset: (r0: number) => r0 * rowBytes,
      stageView: (r0: number) => new Uint8Array(this.memory.buffer, stage, count(r0) * rowBytes),
      quantize: (r0: number) => this.exports.dense_quant_rows(stage, kind, count(r0), cols, paddedCols, weights + r0 * paddedCols, scales + r0 * 4),
      record: () => this.denseRecord(source, DenseLayout.int8Rows, "int8-rows", weights, paddedCols, paddedCols, scales, rows * paddedCols + rows * 4),
    };
  }

  private f16HasNonFinite(bits: Uint16Array, n: number): boolean {
    const per = STAGE_BYTES / 2;
    const stage = this.stageArea();
    for (let i = 0; i < n; i += per) {
      const count = Math.min(per, n - i);
      this.u8.set(new Uint8Array(bits.buffer, bits.byteOffset + i * 2, count * 2), stage);
      const whole = count & ~7;
      if (this.exports.f16_nonfinite(stage, whole) !== 0) return true;
      for (let j = whole; j < count; j++) if ((bits[i + j]! & 0x7c00) === 0x7c00) return true;
    }
    return false;
  }

  private denseRecord(source: { rows: number; cols: number }, layout: DenseLayoutId, format: string, weights: number, rowBytes: number, paddedCols: number, scales: number, bytes: number): WasmDense {
    const record = this.alloc(DENSE.size);
    const f = (offset: number, value: number) => (this.i32[(record + offset) / 4] = value);
    f(DENSE.layout, layout);
    f(DENSE.rows, source.rows);
    f(DENSE.cols, source.cols);
    f(DENSE.weights, weights);
    f(DENSE.rowBytes, rowBytes);
    f(DENSE.paddedCols, paddedCols);
    f(DENSE.scales, scales);
    this.heldBytes += bytes;
    const matrix: WasmDense = { rows: source.rows, cols: source.cols, format, bytes, record, layout, weights, rowBytes, paddedCols, scales };
    this.matrices.add(matrix);
    return matrix;
  }

  /** Rows of `rowBytes` (source rows of `srcRowBytes`, zero padded) into memory at `dst`. */
  private copyRows(src: Uint8Array, rows: number, srcRowBytes: number, dst: number, rowBytes: number): void {
    if (srcRowBytes === rowBytes) {
      this.u8.set(src, dst);
      return;
    }
    for (let r = 0; r < rows; r++) this.u8.set(src.subarray(r * srcRowBytes, (r + 1) * srcRowBytes), dst + r * rowBytes);
  }

  // ---- memory ----

  private views(): void {
    this.buffer = this.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.f32 = new Float32Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
  }

  private alloc(bytes: number, align = 64): number {
    const at = roundUp(this.top, align);
    const end = at + bytes;
    if (end > MAX_PAGES * PAGE - PAGE) {
      throw new B158Error("E_MODEL_UNSUPPORTED", `the WebAssembly kernels hold at most 4 GiB; this model needs more (${Math.ceil(end / 2 ** 20)} MiB so far)`, {
        hint: "Use the TypeScript kernels (B158_KERNELS=ts), or a smaller model or head format.",
      });
    }
    const have = this.memory.buffer.byteLength;
    // grow by at least 1/8 (weights arrive one matrix at a time)
    if (end > have) this.memory.grow(Math.min(MAX_PAGES - have / PAGE, Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE / 8))));
    if (this.memory.buffer.byteLength !== this.buffer.byteLength) this.views();
    this.top = end;
    return at;
  }

  /** A reusable staging area of at least STAGE_BYTES (+ extra) for loads. */
  private stageArea(extra = 0): number {
    const need = STAGE_BYTES + extra;
    if (need > this.stage.size) this.stage = { at: this.alloc(need), size: need };
    return this.stage.at;
  }

  /** The per-call frame's start, the frame grown to at least `bytes` first. */
  private frameBase(bytes: number): number {
    if (bytes > this.frame.size) {
      const size = Math.max(bytes, Math.ceil(this.frame.size * 1.5));
      this.frame = { at: this.alloc(size), size };
    }
    return this.frame.at;
  }

  /** Offsets (64-aligned) of the given sizes within the per-call frame, grown when too small. */
  private frameAlloc(sizes: readonly number[]): number[] {
    let total = 0;
    const offsets = sizes.map((s) => {
      const at = total;
      total += roundUp(s, 64);
      return at;
    });
    if (total > this.frame.size) {
      const size = Math.max(total, Math.ceil(this.frame.size * 1.5));
      this.frame = { at: this.alloc(size), size };
    }
    return offsets.map((o) => this.frame.at + o);
  }

  private rowsPerChunk(rows: number, macsPerRow: number, tile: number): number {
    return Math.min(roundUp(rows, tile), roundUp(Math.max(1, Math.ceil(this.chunkMacs / macsPerRow)), tile));
  }

  private dispatch(tasks: Task[], scratchPerThread: number, macs: number): void {
    const words = taskWords(tasks, []);
    this.writeTasks(words, 0);
    this.runDispatch(words.count, words.chunks, scratchPerThread, macs);
  }

  /** A dispatch's task words into the dispatch record, `base` added to the frame-relative ones. */
  private writeTasks(words: TaskWords, base: number): void {
    const at = (DISPATCH_AT + DISPATCH.tasksAt) / 4;
    const i32 = this.i32;
    i32[(DISPATCH_AT + DISPATCH.tasks) / 4] = words.count;
    i32.set(words.words, at);
    if (base !== 0) for (const i of words.relative) i32[at + i] = i32[at + i]! + base;
    if (this.faultNext) for (let t = 0; t < words.count; t++) i32[at + (t * TASK.size + TASK.kernel) / 4] = KERNEL.fault;
  }

  private runDispatch(tasks: number, chunks: number, scratchPerThread: number, macs: number): void {
    if (scratchPerThread > this.scratch.size) {
      const size = roundUp(scratchPerThread, 4096);
      this.scratch = { at: this.alloc(size * this.threads), size };
    }
    this.dispatcher.setScratch(this.scratch.at, this.scratch.size);
    this.faultNext = false;
    this.dispatcher.run(DISPATCH_AT, chunks, macs >= this.parallelMinMacs);
  }

  private own(matrix: TernaryMatrix | DenseMatrix): TernaryMatrix | DenseMatrix {
    if (!this.matrices.has(matrix)) throw new B158Error("E_INTERNAL", "a matrix from another kernel context was passed in");
    return matrix;
  }

  private checkCall(x: Float32Array, tokens: number, cols: number, outs: readonly Float32Array[], weights: readonly { rows: number }[]): void {
    if (!(Number.isInteger(tokens) && tokens >= 1)) throw new B158Error("E_INTERNAL", `tokens must be a non-negative integer, not ${tokens}`);
    if (x.length < tokens * cols) throw new B158Error("E_INTERNAL", `x holds ${x.length} values; ${tokens} tokens of ${cols} need ${tokens * cols}`);
    weights.forEach((w, i) => {
      if (outs[i] === undefined || outs[i]!.length < tokens * w.rows) throw new B158Error("E_INTERNAL", `output ${i} must hold ${tokens * w.rows} values`);
    });
  }
}
