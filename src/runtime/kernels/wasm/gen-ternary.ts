import { TASK, TERNARY, TernaryLayout, type TernaryLayoutId } from "./layout.js";
import { add, f16ToF64, field, forLoop, get, hsumI32, i32, locals, mul, set } from "./wat.js";

/**
 * Ternary matrix products straight from the packed bytes. In every layout read here a 16-byte load
 * holds, for each 2-bit position p (bits 2p+1:2p), 16 consecutive weights: one "chunk" of a 128-
 * or 64-element unit. Codes are c = t + 1 (0..2), so a row's integer dot product is
 * sum(c * q) - sum(q), the second term computed once per token and block.
 *
 * Portable SIMD128: the int8 activations are split once per token into i16 vectors (even bytes
 * of each 16-byte chunk, then odd bytes), so that `(w >> 2p + 8e) & 3` on i16 lanes gives 8 codes
 * that line up with one of them, and i32x4.dot_i16x8_s (pmaddwd) multiplies and adds pairs (the
 * GEMV telescopes the activations instead of masking the codes: actTelescope).
 * Relaxed SIMD (GEMV): the same byte-lane codes meet the int8 activations themselves in
 * i16x8.relaxed_dot_i8x16_i7x16_s (the codes are the 7-bit operand), 16 weights per instruction.
 * The GEMM (both modules) unpacks tiles once and packs two rows into each i16 lane, which gives
 * pmaddwd the same 16 weights per instruction (ternaryGemm).
 */
export interface TernaryVariant {
  readonly layout: TernaryLayoutId;
  readonly name: string;
  readonly unit: 128 | 64;
  /** Block scales are f16 (TQ2_0's d) rather than f32. */
  readonly f16Scales: boolean;
  /** The chunk of a unit that 16-byte vector h, bit pair p holds. */
  chunkOf(h: number, p: number): number;
}

export const TERNARY_VARIANTS: readonly TernaryVariant[] = [
  // I2_S: byte g of a 32-byte block holds elements g, g+32, g+64, g+96 in bits 7:6 .. 1:0
  { layout: TernaryLayout.i2s128, name: "i2s128", unit: 128, f16Scales: false, chunkOf: (h, p) => 2 * (3 - p) + h },
  { layout: TernaryLayout.i2s64, name: "i2s64", unit: 64, f16Scales: false, chunkOf: (_h, p) => 3 - p },
  // TQ2_0: byte 32j + m holds element 128j + 32n + m in bits 2n+1:2n
  { layout: TernaryLayout.tq2, name: "tq2", unit: 128, f16Scales: true, chunkOf: (h, p) => 2 * p + h },
];

const vectorsPerUnit = (v: TernaryVariant): number => v.unit / 64;

/** The matrix fields every ternary kernel reads (locals named as the fields). */
const MATRIX_LOCALS = locals("i32", "mat", "w", "rowBytes", "blockBytes", "blocks", "units", "paddedBlock", "sPtr", "sRow", "sBlk", "paddedCols");
function readMatrix(): string {
  return [
    set("mat", field(get("task"), TASK.matrix)),
    set("w", field(get("mat"), TERNARY.weights)),
    set("rowBytes", field(get("mat"), TERNARY.rowBytes)),
    set("blockBytes", field(get("mat"), TERNARY.blockBytes)),
    set("blocks", field(get("mat"), TERNARY.blocks)),
    set("units", field(get("mat"), TERNARY.unitsPerBlock)),
    set("paddedBlock", field(get("mat"), TERNARY.paddedBlock)),
    set("sPtr", field(get("mat"), TERNARY.scales)),
    set("sRow", field(get("mat"), TERNARY.scaleRowBytes)),
    set("sBlk", field(get("mat"), TERNARY.scaleBlockBytes)),
    set("paddedCols", field(get("mat"), TERNARY.paddedCols)),
  ].join("\n  ");
}
const TASK_LOCALS = locals("i32", "tokens", "act", "actStride", "qsum", "qsumStride", "actScale", "out", "outStride");
function readTask(): string {
  return [
    set("tokens", field(get("task"), TASK.tokens)),
    set("act", field(get("task"), TASK.act)),
    set("actStride", field(get("task"), TASK.actStride)),
    set("qsum", field(get("task"), TASK.qsum)),
    set("qsumStride", field(get("task"), TASK.qsumStride)),
    set("actScale", field(get("task"), TASK.actScale)),
    set("out", field(get("task"), TASK.out)),
    set("outStride", field(get("task"), TASK.outStride)),
  ].join("\n  ");
}

/** Block scale at address local `ptr`, as f64 (uses local $h for f16). */
function blockScale(v: TernaryVariant, ptr: string): string {
  if (!v.f16Scales) return `(f64.promote_f32 (f32.load ${get(ptr)}))`;
  return `(block (result f64) ${set("h", `(i32.load16_u ${get(ptr)})`)} ${f16ToF64("h")})`;
}

/** 8 codes (0..2) in i16 lanes from bits sh+1:sh of each lane of local `w`. */
function codes16(w: string, sh: number): string {
  if (sh === 14) return `(i16x8.shr_u ${get(w)} (i32.const 14))`;
  const shifted = sh === 0 ? get(w) : `(i16x8.shr_u ${get(w)} (i32.const ${sh}))`;
  return `(v128.and ${shifted} ${get("m3")})`;
}

/**
 * What the portable GEMV multiplies with telescoped activations: for the i16 lane's bit pair k (sh =
 * 2k), the code itself when k = 0 and r_k = w >>> 2k otherwise (the codes of pairs k..7).
 */
function telescopedCodes(w: string, sh: number): string {
  return sh === 0 ? `(v128.and ${get(w)} ${get("m3")})` : `(i16x8.shr_u ${get(w)} (i32.const ${sh}))`;
}

/**
 * The portable GEMV's activations, per token: with c_k = r_k - 4 r_(k+1) (r_8 = 0) for the code in
 * bit pair k of an i16 lane, sum_k c_k x_k = c_0 x_0 + r_1 x_1 + sum_(k>=2) r_k (x_k - 4 x_(k-1)).
 * So x'_k = x_k - 4 x_(k-1) for k >= 2 (|x'| <= 640, an i16) spares the GEMV its masks. Products
 * r_k x'_k reach 2^14 * 640 and the i32 sums may wrap, but only the total matters, and it fits:
 * wrapping adds are exact modulo 2^32. Vector (h, k) of a unit's split activations is the one the
 * GEMV loads for code vector h and bit pair k.
 */
export function actTelescope(v: TernaryVariant): string {
  const at = (h: number, k: number) => 16 * (2 * v.chunkOf(h, k & 3) + (k >> 2));
  let unit = "";
  for (let h = 0; h < vectorsPerUnit(v); h++) {
    for (let k = 7; k >= 0; k--) {
      const value = k < 2 ? `(v128.load offset=${at(h, k)} ${get("src")})` : `(i16x8.sub (v128.load offset=${at(h, k)} ${get("src")}) (i16x8.shl (v128.load offset=${at(h, k - 1)} ${get("src")}) (i32.const 2)))`;
      unit += `(v128.store offset=${at(h, k)} ${get("dst")} ${value})\n    `;
    }
  }
  return `(func (export "act_telescope_${v.name}") (param $src i32) (param $kp i32) (param $dst i32)
  ${locals("i32", "u")}
  ${forLoop(
    "u",
    i32(0),
    get("kp"),
    v.unit,
    `${unit}
    ${set("src", add(get("src"), i32(v.unit * 2)))} ${set("dst", add(get("dst"), i32(v.unit * 2)))}`,
  )})`;
}

/** 16 codes (0..2) in byte lanes from bit pair p of local `w` (m3b: 0x03 bytes). */
function codes8(w: string, p: number): string {
  const shifted = p === 0 ? get(w) : `(i16x8.shr_u ${get(w)} (i32.const ${2 * p}))`;
  return `(v128.and ${shifted} ${get("m3b")})`;
}

const M3 = `(v128.const i16x8 3 3 3 3 3 3 3 3)`;
const M3B = `(v128.const i8x16 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3)`;
/** Rows per pass of the portable and the relaxed GEMV (the backend rounds chunks to them). */
export const PORTABLE_GEMV_ROWS = 4;
export const RELAXED_GEMV_ROWS = 4;

/**
 * GEMV, portable: R rows per pass share each activation load, tokens one after the other. One
 * 16-byte vector per row and step (a whole 128-unit per step made V8 hoist 16 loads and spill); in
 * a 128-unit the second vector's activations sit 32 bytes after the first's. The activations are
 * telescoped (actTelescope), so the codes need a shift but no mask; one i32 accumulator per row.
 */
export function ternaryGemv(v: TernaryVariant, R = PORTABLE_GEMV_ROWS): string {
  const rows = Array.from({ length: R }, (_, r) => r);
  let step = rows.map((r) => set(`w${r}`, `(v128.load align=1 ${get(`p${r}`)})`)).join("");
  for (let p = 0; p < 4; p++) {
    for (let e = 0; e < 2; e++) {
      const sh = 8 * e + 2 * p;
      step += set("a", `(v128.load offset=${16 * (2 * v.chunkOf(0, p) + e)} ${get("ap")})`);
      for (const r of rows) step += set(`acc${r}`, `(i32x4.add ${get(`acc${r}`)} (i32x4.dot_i16x8_s ${telescopedCodes(`w${r}`, sh)} ${get("a")}))`);
      step += "\n";
    }
  }
  return gemvSkeleton(v, {
    name: "ternary_gemv",
    rows: R,
    mask: ["m3", M3],
    // i16 activations: a unit's second vector is 32 bytes on
    apStep: v.unit === 128 ? `(select (i32.const 224) (i32.const 32) ${get("odd")})` : i32(128),
    step,
    runSteps: undefined,
    sums: "acc",
  });
}

/**
 * The GEMV's software prefetch (wasm has no prefetch instruction): each step loads, and drops, one
 * cache line of the rows TOUCH_AHEAD_ROWS ahead of this pass, so that by the time a pass starts its
 * rows are on their way from DRAM. A pass reads its rows as short interleaved streams (K/4 bytes
 * each for I2_S), which the hardware prefetcher does not follow far enough: in a stream of 60
 * distinct 6912x2560 matrices this took SIMD128 from 21-25 to 31-48 GMAC/s (medians) on two
 * threads; 4 rows ahead did 32-37, 16 rows 28-39 (docs/runtime-kernels.md). Steps read 16 bytes of each row, so
 * a pass's steps touch, 64 bytes apiece, at most the 4 x rowBytes of the rows ahead. Where those
 * rows are past this thread's range the touch stays on the pass's first row (tstep 0): never
 * outside the matrix.
 */
const TOUCH_AHEAD_ROWS = 8;

function touchAhead(rowsPerPass: number): string {
  const ahead = `(i32.le_u ${add(get("r"), i32(TOUCH_AHEAD_ROWS + rowsPerPass))} ${get("r1")})`;
  return `${set("tp", `(select ${add(get("p0"), mul(get("rowBytes"), i32(TOUCH_AHEAD_ROWS)))} ${get("p0")} ${ahead})`)} ${set("tstep", `(select (i32.const 64) (i32.const 0) ${ahead})`)}`;
}

/**
 * The GEMVs' frame: R rows per pass (the last pass repeats its last row), each token in turn; per
 * scale block, the steps (one 16-byte vector per row: a longer body makes V8 hoist every load and
 * spill), then sum_b d_b * (dot_b - qsum_b) / s per row. With `runSteps`, the i16 accumulators acc{r}
 * are widened into i32 ones (dv{r}) after each run of that many steps.
 */
function gemvSkeleton(
  v: TernaryVariant,
  kernel: { name: string; rows: number; mask: [string, string]; apStep: string; step: string; runSteps: number | undefined; sums: "acc" | "dv" },
): string {
  const rows = Array.from({ length: kernel.rows }, (_, r) => r);
  const widened = kernel.runSteps !== undefined;
  const advance = `${rows.map((r) => set(`p${r}`, add(get(`p${r}`), i32(16)))).join(" ")}
          (drop (i32.load ${get("tp")})) ${set("tp", add(get("tp"), get("tstep")))}
          ${set("ap", add(get("ap"), kernel.apStep))}
          ${v.unit === 128 ? set("odd", `(i32.xor ${get("odd")} (i32.const 1))`) : ""}`;
  const steps = widened
    ? `(loop $run
          ${set("k", `(select (i32.const ${kernel.runSteps}) ${get("u")} (i32.gt_u ${get("u")} (i32.const ${kernel.runSteps})))`)}
          ${set("u", `(i32.sub ${get("u")} ${get("k")})`)}
          (loop $step
            ${kernel.step}
            ${advance}
            (br_if $step (local.tee $k (i32.sub ${get("k")} (i32.const 1)))))
          ${rows.map((r) => `${set(`dv${r}`, `(i32x4.add ${get(`dv${r}`)} (i32x4.extadd_pairwise_i16x8_s ${get(`acc${r}`)}))`)} ${set(`acc${r}`, "(v128.const i64x2 0 0)")}`).join(" ")}
          (br_if $run ${get("u")}))`
    : `(loop $step
          ${kernel.step}
          ${advance}
          (br_if $step (local.tee $u (i32.sub ${get("u")} (i32.const 1)))))`;
  return `(func $${kernel.name}_${v.name} (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${MATRIX_LOCALS} ${TASK_LOCALS}
  ${locals("i32", "t", "r", "b", "u", "k", "odd", "ap", "ap0", "qs", "q", "out0", "h", "nrows", "tp", "tstep", ...rows.map((r) => `p${r}`), ...rows.map((r) => `blk${r}`), ...rows.map((r) => `sp${r}`))}
  ${locals("f64", "s", ...rows.map((r) => `sum${r}`))}
  ${locals("v128", kernel.mask[0], "a", ...rows.map((r) => `w${r}`), ...rows.map((r) => `acc${r}`), ...(widened ? rows.map((r) => `dv${r}`) : []))}
  ${readMatrix()}
  ${readTask()}
  ${set(kernel.mask[0], kernel.mask[1])}
  ${forLoop(
    "t",
    i32(0),
    get("tokens"),
    1,
    `${set("ap0", add(get("act"), mul(get("t"), get("actStride"))))}
    ${set("out0", add(get("out"), mul(get("t"), get("outStride"))))}
    ${set("s", `(f64.promote_f32 (f32.load ${add(get("actScale"), `(i32.shl ${get("t")} (i32.const 2))`)}))`)}
    ${forLoop(
      "r",
      get("r0"),
      get("r1"),
      kernel.rows,
      `${set("nrows", `(i32.sub ${get("r1")} ${get("r")})`)}
      ${rows
        .map((r) => {
          const row = r === 0 ? get("r") : `(select ${add(get("r"), i32(r))} ${get("r")} (i32.gt_u ${get("nrows")} ${i32(r)}))`;
          return `${set(`p${r}`, add(get("w"), mul(row, get("rowBytes"))))} ${set(`sp${r}`, add(get("sPtr"), mul(row, get("sRow"))))} ${set(`sum${r}`, "(f64.const 0)")}`;
        })
        .join("\n      ")}
      ${set("ap", get("ap0"))}
      ${touchAhead(kernel.rows)}
      ${set("qs", add(get("qsum"), mul(get("t"), get("qsumStride"))))}
      ${forLoop(
        "b",
        i32(0),
        get("blocks"),
        1,
        `${rows.map((r) => `${set(`blk${r}`, get(`p${r}`))} ${set(`acc${r}`, "(v128.const i64x2 0 0)")} ${widened ? set(`dv${r}`, "(v128.const i64x2 0 0)") : ""}`).join(" ")}
        ${set("u", mul(get("units"), i32(vectorsPerUnit(v))))} ${set("odd", i32(0))}
        ${steps}
        ${set("q", `(i32.load ${get("qs")})`)}
        ${set("qs", add(get("qs"), i32(4)))}
        ${rows
          .map(
            (r) =>
              `${set(`sum${r}`, `(f64.add ${get(`sum${r}`)} (f64.mul ${blockScale(v, `sp${r}`)} (f64.convert_i32_s (i32.sub ${hsumI32(get(`${kernel.sums}${r}`))} ${get("q")}))))`)} ${set(`sp${r}`, add(get(`sp${r}`), get("sBlk")))} ${set(`p${r}`, add(get(`blk${r}`), get("blockBytes")))}`,
          )
          .join("\n        ")}`,
      )}
      ${rows
        .map(
          (r) =>
            `(if (i32.gt_u ${get("nrows")} ${i32(r)}) (then (f32.store offset=${4 * r} ${add(get("out0"), `(i32.shl ${get("r")} (i32.const 2))`)} (f32.demote_f64 (f64.div ${get(`sum${r}`)} ${get("s")})))))`,
        )
        .join("\n      ")}`,
    )}`,
  )})`;
}

/**
 * A function that walks one row's blocks and units (local $w0: the unit's 16-byte vector h, loaded
 * by `perVector(h)`'s caller) and writes `dstPerUnit` bytes per unit at $dst.
 */
function unpackFunction(v: TernaryVariant, name: string, vectorLocals: string[], init: string, perVector: (h: number) => string, dstPerUnit: number): string {
  let unit = "";
  for (let h = 0; h < vectorsPerUnit(v); h++) unit += set("w0", `(v128.load offset=${16 * h} align=1 ${get("p")})`) + perVector(h);
  return `(func $${name}_${v.name} (param $p i32) (param $dst i32) (param $blocks i32) (param $units i32) (param $blockBytes i32)
  ${locals("i32", "b", "u", "blk")} ${locals("v128", "w0", ...vectorLocals)}
  ${init}
  ${forLoop(
    "b",
    i32(0),
    get("blocks"),
    1,
    `${set("blk", get("p"))} ${set("u", get("units"))}
    (loop $unit
      ${unit}
      ${set("p", add(get("p"), i32(v.unit / 4)))}
      ${set("dst", add(get("dst"), i32(dstPerUnit)))}
      (br_if $unit (local.tee $u (i32.sub ${get("u")} (i32.const 1)))))
    ${set("p", add(get("blk"), get("blockBytes")))}`,
  )})`;
}

/**
 * Writes the codes of one row as i16 vectors in the order of the split activations, every other
 * 16 bytes (the GEMM interleaves two rows: row r + 1 starts at dst + 16).
 */
export function unpackCodes16(v: TernaryVariant): string {
  const perVector = (h: number): string => {
    let out = "";
    for (let p = 0; p < 4; p++) {
      for (let e = 0; e < 2; e++) out += `(v128.store offset=${32 * (2 * v.chunkOf(h, p) + e)} ${get("dst")} ${codes16("w0", 8 * e + 2 * p)})`;
    }
    return out;
  };
  return unpackFunction(v, "unpack16", ["m3"], set("m3", M3), perVector, v.unit * 4);
}

/** Writes the ternary values t = c - 1 of one row as f64, in element order (float mode). */
export function unpackCodesF64(v: TernaryVariant): string {
  const perVector = (h: number): string => {
    let out = "";
    for (let p = 0; p < 4; p++) {
      out += set("t8", `(i8x16.sub ${codes8("w0", p)} ${get("one")})`);
      const base = 16 * v.chunkOf(h, p) * 8;
      for (let half = 0; half < 2; half++) {
        out += set("t16", `(i16x8.extend_${half ? "high" : "low"}_i8x16_s ${get("t8")})`);
        for (let quarter = 0; quarter < 2; quarter++) {
          out += set("t32", `(i32x4.extend_${quarter ? "high" : "low"}_i16x8_s ${get("t16")})`);
          const at = base + (half * 8 + quarter * 4) * 8;
          out += `(v128.store offset=${at} ${get("dst")} (f64x2.convert_low_i32x4_s ${get("t32")}))`;
          out += `(v128.store offset=${at + 16} ${get("dst")} (f64x2.convert_low_i32x4_s (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${get("t32")} ${get("t32")})))`;
        }
      }
    }
    return out;
  };
  const init = `${set("m3b", M3B)} ${set("one", "(v128.const i8x16 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1)")}`;
  return unpackFunction(v, "unpackf64", ["m3b", "one", "t8", "t16", "t32"], init, perVector, v.unit * 8);
}

/**
 * The GEMM's last step for a tile: for 4 rows x 4 tokens, the i32x4 partial sums sum(t * q) each
 * block left in $isum ([block][row * 4 + token]) become y = f32(sum_b d_b * dot_b / s).
 */
function finishGemmTile(v: TernaryVariant): string {
  return `${forLoop(
    "i",
    i32(0),
    i32(16),
    1,
    `${set("rr", `(i32.shr_u ${get("i")} (i32.const 2))`)}
    ${set("tt", add(get("t"), `(i32.and ${get("i")} (i32.const 3))`))}
    (if (i32.and (i32.lt_u ${get("rr")} ${get("nrows")}) (i32.lt_u ${get("tt")} ${get("tokens")})) (then
      ${set("sum", "(f64.const 0)")}
      ${set("sp", add(get("sPtr"), mul(add(get("r"), get("rr")), get("sRow"))))}
      ${set("ip", add(get("isum"), `(i32.shl ${get("i")} (i32.const 4))`))}
      ${forLoop(
        "b",
        i32(0),
        get("blocks"),
        1,
        `${set("sum", `(f64.add ${get("sum")} (f64.mul ${blockScale(v, "sp")} (f64.convert_i32_s ${hsumI32(`(v128.load ${get("ip")})`)})))`)}
        ${set("sp", add(get("sp"), get("sBlk")))} ${set("ip", add(get("ip"), i32(GEMM_TILE_BYTES)))}`,
      )}
      (f32.store ${add(add(get("out"), mul(get("tt"), get("outStride"))), `(i32.shl ${add(get("r"), get("rr"))} (i32.const 2))`)}
        (f32.demote_f64 (f64.div ${get("sum")} (f64.promote_f32 (f32.load ${add(get("actScale"), `(i32.shl ${get("tt")} (i32.const 2))`)})))))))`,
  )}`;
}

const GEMM_ACCS = [0, 1].flatMap((r) => [0, 1, 2, 3].map((t) => `acc${r}${t}`));
/** $isum bytes per block: an i32x4 per row and token of the 4 x 4 tile. */
const GEMM_TILE_BYTES = 16 * 16;
/** Scratch bytes per column of a tile's codes: four rows unpacked to i16, whose pairs then replace the first two. */
const GEMM_CODE_BYTES_PER_COLUMN = 8;

/** Thread scratch the GEMM needs for a matrix: a tile's codes, then its block sums ($isum). */
export function gemmScratchBytes(paddedCols: number, blocks: number): number {
  return paddedCols * GEMM_CODE_BYTES_PER_COLUMN + blocks * GEMM_TILE_BYTES;
}
/** $isum slot += value (slot offsets are from $ip). */
const addToSlot = (slot: number, value: string): string => `(v128.store offset=${16 * slot} ${get("ip")} (i32x4.add (v128.load offset=${16 * slot} ${get("ip")}) ${value}))`;

/** Steps of one run of the GEMM: |sum(t * q)| per lane stays <= 31 * 256 < 2^13. */
const PACKED_RUN_STEPS = 31;

/**
 * GEMM (both modules): two rows per i16 lane. A tile of four rows is unpacked once into thread
 * scratch as t_r + 2^14 * t_{r+1} (t = c - 1 in -1..1, so the lane fits i16), and
 * i32x4.dot_i16x8_s (pmaddwd) then does 16 ternary multiply-adds per instruction instead of 8:
 * each i32 lane of a step's product is L + 2^14 * H with L, H in [-256, 256]. After a run of at
 * most 31 steps, |L| <= 7936 < 2^13, so L is the low 14 bits sign-extended and H = (v - L) >> 14,
 * both exact, added to the block's slots in $isum. The micro-kernel is 2 pair vectors x 4 tokens,
 * the four tokens' activations interleaved once per call, so one step reads through two pointers;
 * one step is one code vector per register (unrolling further makes V8 hoist the loads and spill).
 * The last tile repeats its last row; finishGemmTile stores only the real ones.
 */
export function ternaryGemm(v: TernaryVariant): string {
  // rows 0, 1 unpacked interleaved at $scratch, rows 2, 3 at $scratch + 4 * paddedCols; then per
  // step the pair vectors (rows 0|1, rows 2|3) replace the four code vectors at $scratch
  const unpack = (row: string, dst: string) => `(call $unpack16_${v.name} ${add(get("w"), mul(get(row), get("rowBytes")))} ${dst} ${get("blocks")} ${get("units")} ${get("blockBytes")})`;
  const second = add(get("scratch"), `(i32.shl ${get("paddedCols")} (i32.const 2))`);
  const pair = (from: string) =>
    `(i16x8.sub (i16x8.add (v128.load ${from}) (i16x8.shl (v128.load offset=16 ${from}) (i32.const 14))) (v128.const i16x8 16385 16385 16385 16385 16385 16385 16385 16385))`;
  const prepare = `${unpack("row0", get("scratch"))} ${unpack("row1", add(get("scratch"), i32(16)))}
    ${unpack("row2", second)} ${unpack("row3", add(second, i32(16)))}
    ${set("x", get("scratch"))} ${set("y", second)}
    ${forLoop(
      "j",
      i32(0),
      `(i32.shr_u ${get("paddedCols")} (i32.const 3))`,
      1,
      `(v128.store ${get("x")} ${pair(get("x"))}) (v128.store offset=16 ${get("x")} ${pair(get("y"))})
      ${set("x", add(get("x"), i32(32)))} ${set("y", add(get("y"), i32(32)))}`,
    )}`;
  const separate = GEMM_ACCS.map((acc, i) => {
    const [pairIndex, token] = [Math.floor(i / 4), i % 4];
    return `${set("v", get(acc))} ${set("lo", `(i32x4.shr_s (i32x4.shl ${get("v")} (i32.const 18)) (i32.const 18))`)}
          ${addToSlot(2 * pairIndex * 4 + token, get("lo"))}
          ${addToSlot((2 * pairIndex + 1) * 4 + token, `(i32x4.shr_s (i32x4.sub ${get("v")} ${get("lo")}) (i32.const 14))`)}`;
  }).join("\n          ");
  let step = set("c0", `(v128.load ${get("up")})`) + set("c1", `(v128.load offset=16 ${get("up")})`);
  for (let tt = 0; tt < 4; tt++) {
    step += set("a", `(v128.load offset=${16 * tt} ${get("ap")})`);
    for (const c of [0, 1]) step += set(`acc${c}${tt}`, `(i32x4.add ${get(`acc${c}${tt}`)} (i32x4.dot_i16x8_s ${get(`c${c}`)} ${get("a")}))`);
  }
  const rowLocals = [0, 1, 2, 3].map((i) => `row${i}`);
  return `(func $ternary_gemm_${v.name} (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${MATRIX_LOCALS} ${TASK_LOCALS}
  ${locals("i32", "t", "r", "b", "n", "k", "i", "rr", "tt", "nrows", "isum", "up", "ap", "ip", "sp", "h", "j", "x", "y", ...rowLocals)}
  ${locals("f64", "sum")}
  ${locals("v128", "c0", "c1", "a", "v", "lo", ...GEMM_ACCS)}
  ${readMatrix()}
  ${readTask()}
  ;; scratch (gemmScratchBytes): the tile's codes, then $isum
  ${set("isum", add(get("scratch"), mul(get("paddedCols"), i32(GEMM_CODE_BYTES_PER_COLUMN))))}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    4,
    `${set("nrows", `(i32.sub ${get("r1")} ${get("r")})`)}
    ${rowLocals.map((name, i) => set(name, i === 0 ? get("r") : `(select ${add(get("r"), i32(i))} ${get(`row${i - 1}`)} (i32.gt_u ${get("nrows")} ${i32(i)}))`)).join(" ")}
    ${prepare}
    ${forLoop(
      "t",
      i32(0),
      get("tokens"),
      4,
      `${set("ap", add(get("act"), mul(`(i32.shr_u ${get("t")} (i32.const 2))`, get("actStride"))))}
      ${set("up", get("scratch"))} ${set("ip", get("isum"))}
      ${forLoop(
        "b",
        i32(0),
        get("blocks"),
        1,
        `${Array.from({ length: 16 }, (_, i) => `(v128.store offset=${16 * i} ${get("ip")} (v128.const i64x2 0 0))`).join(" ")}
        ${set("n", `(i32.shr_u ${get("paddedBlock")} (i32.const 3))`)}
        (loop $run
          ${GEMM_ACCS.map((n) => set(n, "(v128.const i64x2 0 0)")).join(" ")}
          ${set("k", `(select (i32.const ${PACKED_RUN_STEPS}) ${get("n")} (i32.gt_u ${get("n")} (i32.const ${PACKED_RUN_STEPS})))`)}
          ${set("n", `(i32.sub ${get("n")} ${get("k")})`)}
          (loop $step
            ${step}
            ${set("up", add(get("up"), i32(32)))} ${set("ap", add(get("ap"), i32(64)))}
            (br_if $step (local.tee $k (i32.sub ${get("k")} (i32.const 1)))))
          ${separate}
          (br_if $run ${get("n")}))
        ${set("ip", add(get("ip"), i32(GEMM_TILE_BYTES)))}`,
      )}
      ${finishGemmTile(v)}`,
    )}`,
  )})`;
}

/**
 * Float activations: one row at a time, its ternary values unpacked once to f64 in thread
 * scratch, then four tokens per pass, each summed in two f64 lanes per block (the reference order).
 */
export function ternaryFloat(v: TernaryVariant): string {
  let step = "";
  for (let tt = 0; tt < 4; tt++) step += set(`acc${tt}`, `(f64x2.add ${get(`acc${tt}`)} (f64x2.mul ${get("f")} (v128.load ${get(`x${tt}`)})))`);
  return `(func $ternary_float_${v.name} (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${MATRIX_LOCALS} ${TASK_LOCALS}
  ${locals("i32", "t", "r", "b", "n", "tt", "fp", "sp", "h", "last", "x0", "x1", "x2", "x3")}
  ${locals("f64", "d", "sum0", "sum1", "sum2", "sum3")}
  ${locals("v128", "f", "acc0", "acc1", "acc2", "acc3")}
  ${readMatrix()}
  ${readTask()}
  ${set("last", `(i32.sub ${get("tokens")} (i32.const 1))`)}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    1,
    `(call $unpackf64_${v.name} ${add(get("w"), mul(get("r"), get("rowBytes")))} ${get("scratch")} ${get("blocks")} ${get("units")} ${get("blockBytes")})
    ${forLoop(
      "t",
      i32(0),
      get("tokens"),
      4,
      `${[0, 1, 2, 3]
        .map((tt) => set(`x${tt}`, add(get("act"), mul(tt === 0 ? get("t") : `(select ${add(get("t"), i32(tt))} ${get("last")} (i32.lt_u ${add(get("t"), i32(tt))} ${get("tokens")}))`, get("actStride")))))
        .join(" ")}
      ${set("fp", get("scratch"))}
      ${set("sp", add(get("sPtr"), mul(get("r"), get("sRow"))))}
      ${[0, 1, 2, 3].map((tt) => set(`sum${tt}`, "(f64.const 0)")).join(" ")}
      ${forLoop(
        "b",
        i32(0),
        get("blocks"),
        1,
        `${[0, 1, 2, 3].map((tt) => set(`acc${tt}`, "(v128.const i64x2 0 0)")).join(" ")}
        ${set("n", `(i32.shr_u ${get("paddedBlock")} (i32.const 1))`)}
        (loop $step
          ${set("f", `(v128.load ${get("fp")})`)}
          ${step}
          ${["fp", "x0", "x1", "x2", "x3"].map((p) => set(p, add(get(p), i32(16)))).join(" ")}
          (br_if $step (local.tee $n (i32.sub ${get("n")} (i32.const 1)))))
        ${set("d", blockScale(v, "sp"))}
        ${set("sp", add(get("sp"), get("sBlk")))}
        ${[0, 1, 2, 3]
          .map((tt) => set(`sum${tt}`, `(f64.add ${get(`sum${tt}`)} (f64.mul ${get("d")} (f64.add (f64x2.extract_lane 0 ${get(`acc${tt}`)}) (f64x2.extract_lane 1 ${get(`acc${tt}`)}))))`))
          .join("\n        ")}`,
      )}
      ${[0, 1, 2, 3]
        .map(
          (tt) => `(if (i32.lt_u ${add(get("t"), i32(tt))} ${get("tokens")}) (then
        (f32.store ${add(add(get("out"), mul(add(get("t"), i32(tt)), get("outStride"))), `(i32.shl ${get("r")} (i32.const 2))`)} (f32.demote_f64 ${get(`sum${tt}`)}))))`,
        )
        .join("\n      ")}`,
    )}`,
  )})`;
}

/**
 * GEMV, relaxed SIMD: R rows per pass, 16 weights per i16x8.relaxed_dot_i8x16_i7x16_s (codes as the
 * unsigned 7-bit operand, |q| <= 127), i16 sums widened every 64 dots (|sum| <= 32512) and at each
 * block's end. One loop step is one 16-byte vector per row (a longer body makes V8 hoist every load
 * and spill): in a 128-unit the second vector's chunks sit 16 bytes after the first's.
 */
export function ternaryGemvRelaxed(v: TernaryVariant, R = RELAXED_GEMV_ROWS): string {
  let step = "";
  for (let r = 0; r < R; r++) step += set(`w${r}`, `(v128.load align=1 ${get(`p${r}`)})`);
  for (let p = 0; p < 4; p++) {
    step += set("a", `(v128.load offset=${16 * v.chunkOf(0, p)} ${get("ap")})`);
    for (let r = 0; r < R; r++) step += set(`acc${r}`, `(i16x8.add ${get(`acc${r}`)} (i16x8.relaxed_dot_i8x16_i7x16_s ${get("a")} ${codes8(`w${r}`, p)}))`);
    step += "\n";
  }
  return gemvSkeleton(v, {
    name: "ternary_gemv_relaxed",
    rows: R,
    mask: ["m3b", M3B],
    // byte activations: a unit's second vector is 16 bytes on
    apStep: v.unit === 128 ? `(select (i32.const 112) (i32.const 16) ${get("odd")})` : i32(64),
    step,
    runSteps: 16,
    sums: "dv",
  });
}
