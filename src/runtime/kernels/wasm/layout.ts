/**
 * What the WebAssembly kernels and their TypeScript driver share: the byte layout of the records
 * they exchange through linear memory, and the kernel table. The generator (./generate.ts) and the
 * driver (./backend.ts) both read these numbers, so the two cannot drift apart.
 */

/** A ternary matrix as the kernels see it (i32 fields, byte offsets). */
export const TERNARY = {
  /** TernaryLayout id. */
  layout: 0,
  rows: 4,
  cols: 8,
  /** Address of row 0. */
  weights: 12,
  rowBytes: 16,
  /** Bytes from one scale block to the next in a row (TQ2_0: 66, with its d). */
  blockBytes: 20,
  blocks: 24,
  /** 128- or 64-element units per scale block. */
  unitsPerBlock: 28,
  /** Elements per scale block as stored (the block's weights, then zero padding). */
  paddedBlock: 32,
  /** Block scales: address, bytes per row, bytes per block (0 for a per-tensor scale). */
  scales: 36,
  scaleRowBytes: 40,
  scaleBlockBytes: 44,
  /** Elements per row as stored: blocks * paddedBlock. */
  paddedCols: 48,
  size: 64,
} as const;

/** A dense matrix (i32 fields, byte offsets). */
export const DENSE = {
  layout: 0,
  rows: 4,
  cols: 8,
  weights: 12,
  rowBytes: 16,
  /** Elements per row as stored (cols rounded up to 16, zero padded). */
  paddedCols: 20,
  /** int8-rows: the f32 row scales. */
  scales: 24,
  size: 32,
} as const;

/**
 * An attention call as the kernel sees it (i32 fields; the driver rewrites it for every call). The
 * cache of a layer: keys transposed, [kvHeads][paddedDim][positionStride] (a new key is a column),
 * values [kvHeads][positionStride][paddedDim]; paddedDim = headDim rounded up to 4, zero padded.
 */
export const ATTENTION = {
  /** The dispatcher reads a task's row count here: tokens x kvHeads (one row per token and kv head). */
  rows: 4,
  keys: 8,
  values: 12,
  /** Floats from one position to the next in a transposed key row (positions rounded up to 16). */
  positionStride: 16,
  kvHeads: 20,
  paddedDim: 24,
  /** Query heads per kv head. */
  group: 28,
  start: 32,
  /** f32 */
  scale: 36,
  size: 64,
} as const;

/** An element-wise call (rmsNorm, relu2Gate) as its kernel sees it: the driver rewrites it for every call. */
export const ROWS = {
  /** The dispatcher reads a task's row count here. */
  rows: 4,
  width: 8,
  /** rmsNorm: the weight vector; relu2Gate: the up rows. */
  other: 12,
  /** f64 */
  eps: 16,
  /** relu2Gate: the element count (the last row stops there). */
  count: 24,
  size: 32,
} as const;

/** One matrix's share of a dispatch: rows cut into chunks that threads claim (i32 fields). */
export const TASK = {
  kernel: 0,
  matrix: 4,
  rowsPerChunk: 8,
  firstChunk: 12,
  chunks: 16,
  tokens: 20,
  /** Prepared activations of token 0, and the bytes from one token's to the next. */
  act: 24,
  actStride: 28,
  /** i32 per (token, scale block): the sum of the int8 activations over the block. */
  qsum: 32,
  qsumStride: 36,
  /** f32 per token: the activation scale s. */
  actScale: 40,
  out: 44,
  outStride: 48,
  /** DENSE_PRESCALED: x was multiplied by 2^112 (f16 weights then skip one multiply). */
  flags: 52,
  size: 64,
} as const;

export const DENSE_PRESCALED = 1;

/** A dispatch: the task count at +0, tasks from +TASKS_AT. */
export const DISPATCH = { tasks: 0, tasksAt: 16 } as const;

/** The control block that threads synchronise on (i32 word indices; hot words on their own cache lines). */
export const CONTROL = {
  /** Bumped by the caller for each dispatch; workers wait on it. */
  generation: 0,
  /** Next chunk to claim (set to CLAIM_CLOSED between dispatches). */
  next: 16,
  /** Chunks finished. */
  done: 32,
  chunks: 48,
  dispatch: 49,
  /** Nonzero once a worker failed: 1 = an exception, 2 = the thread died. */
  failed: 50,
  failedThread: 51,
  stop: 52,
  scratch: 53,
  scratchBytes: 54,
  /** Tests only: a worker thread id that exits abruptly on its next dispatch. */
  inject: 55,
  /** Chunks run by threads 0..7 since the start (tests check that workers take part). */
  chunksRun: 56,
  words: 64,
} as const;
export const CONTROL_AT = 1024;
export const CLAIM_CLOSED = 0x40000000;

/** Ternary layouts the kernels read directly. */
export const TernaryLayout = {
  /** bitnet.cpp I2_S with 128-element blocks; also b158's re-laid codes (with zero-padded groups). */
  i2s128: 0,
  /** I2_S with the ARM 64-element blocks; also re-laid codes whose blocks are odd multiples of 64. */
  i2s64: 1,
  /** llama.cpp TQ2_0: 66-byte blocks of 256 (64 bytes of codes, then the f16 d). */
  tq2: 2,
} as const;
export type TernaryLayoutId = (typeof TernaryLayout)[keyof typeof TernaryLayout];

export const DenseLayout = { f32: 0, f16: 1, bf16: 2, int8Rows: 3 } as const;
export type DenseLayoutId = (typeof DenseLayout)[keyof typeof DenseLayout];

/** Kernel table indices (call_indirect). Relaxed entries trap in the portable module. */
export const KERNEL = {
  /** + TernaryLayoutId */
  ternaryGemv: 0,
  ternaryGemm: 3,
  ternaryFloat: 6,
  ternaryGemvRelaxed: 9,
  /** + DenseLayoutId */
  dense: 12,
  /** Traps: tests that a failing kernel reaches the caller as an error. */
  fault: 16,
  attention: 17,
  rmsNorm: 18,
  relu2Gate: 19,
  /** + DenseLayoutId (f32, f16, bf16): many tokens through dense rows. */
  denseGemm: 20,
  count: 24,
} as const;
