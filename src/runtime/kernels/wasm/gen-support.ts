import { CONTROL, DISPATCH, TASK } from "./layout.js";
import { add, field, forLoop, get, hsumI32, i32, locals, mul, set } from "./wat.js";

/**
 * Activation preparation (once per token, shared by every matrix of a dispatch), load-time helpers
 * (code-3 scans, the re-lay of codes, int8 rows), and the chunk dispatcher that every thread runs.
 */

/**
 * ActQuant as api.ts defines it: amax over |x|, s = f32(127 / max(amax, 1e-5)) in f64, q =
 * saturate(nearest(f32(x * s))): f32x4.nearest rounds half to even and i32x4.trunc_sat maps NaN to
 * 0, like the reference's Int8Array store. amax is an integer max over the bits of |x|: for
 * non-negative floats it orders as the values do, and any NaN sorts above Inf, so NaN propagates
 * as with Math.max (f32x4.max's IEEE lowering is a dozen instructions).
 */
export const actQuantize = `(func (export "act_quantize") (param $x i32) (param $k i32) (param $q i32) (result f32)
  ${locals("i32", "i", "end", "p", "amax")} ${locals("f32", "s")} ${locals("v128", "m", "sv", "abs")}
  ${set("m", "(v128.const i64x2 0 0)")}
  ${set("abs", "(v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)")}
  ${set("end", `(i32.and ${get("k")} (i32.const -4))`)}
  ${forLoop("i", i32(0), get("end"), 4, set("m", `(i32x4.max_s ${get("m")} (v128.and (v128.load align=4 ${add(get("x"), `(i32.shl ${get("i")} (i32.const 2))`)}) ${get("abs")}))`))}
  ${set("m", `(i32x4.max_s ${get("m")} (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${get("m")} ${get("m")}))`)}
  ${set("amax", `(select (i32x4.extract_lane 0 ${get("m")}) (i32x4.extract_lane 1 ${get("m")}) (i32.gt_s (i32x4.extract_lane 0 ${get("m")}) (i32x4.extract_lane 1 ${get("m")})))`)}
  ${forLoop("i", get("end"), get("k"), 1, `${set("p", `(i32.and (i32.load ${add(get("x"), `(i32.shl ${get("i")} (i32.const 2))`)}) (i32.const 0x7fffffff))`)} ${set("amax", `(select ${get("p")} ${get("amax")} (i32.gt_s ${get("p")} ${get("amax")}))`)}`)}
  ${set("s", `(f32.demote_f64 (f64.div (f64.const 127) (f64.max (f64.promote_f32 (f32.reinterpret_i32 ${get("amax")})) (f64.const 1e-5))))`)}
  ${set("sv", `(f32x4.splat ${get("s")})`)}
  ${set("end", `(i32.and ${get("k")} (i32.const -16))`)}
  ${forLoop(
    "i",
    i32(0),
    get("end"),
    16,
    `${set("p", add(get("x"), `(i32.shl ${get("i")} (i32.const 2))`))}
    (v128.store align=1 ${add(get("q"), get("i"))} (i8x16.narrow_i16x8_s
      (i16x8.narrow_i32x4_s
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load align=4 ${get("p")}) ${get("sv")})))
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=16 align=4 ${get("p")}) ${get("sv")}))))
      (i16x8.narrow_i32x4_s
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=32 align=4 ${get("p")}) ${get("sv")})))
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=48 align=4 ${get("p")}) ${get("sv")}))))))`,
  )}
  ${forLoop(
    "i",
    get("end"),
    get("k"),
    1,
    `${set("p", `(i32.trunc_sat_f32_s (f32.nearest (f32.mul (f32.load ${add(get("x"), `(i32.shl ${get("i")} (i32.const 2))`)}) ${get("s")})))`)}
    ${set("p", `(select (i32.const 127) ${get("p")} (i32.gt_s ${get("p")} (i32.const 127)))`)}
    ${set("p", `(select (i32.const -128) ${get("p")} (i32.lt_s ${get("p")} (i32.const -128)))`)}
    (i32.store8 ${add(get("q"), get("i"))} ${get("p")})`,
  )}
  ${get("s")})`;

/** Copies k bytes in groups of g, each followed by gp - g zero bytes (b158's padded blocks). */
export const actPad = `(func (export "act_pad") (param $src i32) (param $k i32) (param $g i32) (param $gp i32) (param $dst i32)
  ${locals("i32", "i")}
  ${forLoop(
    "i",
    i32(0),
    get("k"),
    get("g"),
    `(memory.copy ${get("dst")} ${add(get("src"), get("i"))} ${get("g")})
    (memory.fill ${add(get("dst"), get("g"))} (i32.const 0) (i32.sub ${get("gp")} ${get("g")}))
    ${set("dst", add(get("dst"), get("gp")))}`,
  )})`;

/** The same padding for float activations, widened to f64 (float mode). */
export const actPadF64 = `(func (export "act_pad_f64") (param $x i32) (param $k i32) (param $g i32) (param $gp i32) (param $dst i32)
  ${locals("i32", "i", "j")}
  ${forLoop(
    "i",
    i32(0),
    get("k"),
    get("g"),
    `${forLoop("j", i32(0), get("gp"), 1, `(f64.store ${add(get("dst"), `(i32.shl ${get("j")} (i32.const 3))`)} (select (f64.promote_f32 (f32.load ${add(get("x"), `(i32.shl ${add(get("i"), get("j"))} (i32.const 2))`)})) (f64.const 0) (i32.lt_u ${get("j")} ${get("g")})))`)}
    ${set("dst", add(get("dst"), `(i32.shl ${get("gp")} (i32.const 3))`))}`,
  )})`;

/** Each 16-byte chunk of int8 activations at q as two i16 vectors (`first`, `second` of local $v) at dst. */
function widenChunks(name: string, first: string, second: string): string {
  return `(func (export "${name}") (param $q i32) (param $kp i32) (param $dst i32)
  ${locals("i32", "i")} ${locals("v128", "v")}
  ${forLoop(
    "i",
    i32(0),
    get("kp"),
    16,
    `${set("v", `(v128.load ${add(get("q"), get("i"))})`)}
    (v128.store ${add(get("dst"), `(i32.shl ${get("i")} (i32.const 1))`)} ${first})
    (v128.store offset=16 ${add(get("dst"), `(i32.shl ${get("i")} (i32.const 1))`)} ${second})`,
  )})`;
}

/** The portable ternary kernels' activations: each chunk's even bytes, then its odd bytes. */
export const actSplit16 = widenChunks("act_split16", `(i16x8.shr_s (i16x8.shl ${get("v")} (i32.const 8)) (i32.const 8))`, `(i16x8.shr_s ${get("v")} (i32.const 8))`);

/** The int8-rows head's activations: widened in element order. */
export const actWiden16 = widenChunks("act_widen16", `(i16x8.extend_low_i8x16_s ${get("v")})`, `(i16x8.extend_high_i8x16_s ${get("v")})`);

/**
 * Four tokens' prepared activations interleaved 16 bytes at a time (the GEMMs read all four through
 * one pointer): vector j of token t goes to dst + (4j + t) * 16; tokens past `count` repeat the last.
 */
export const actInterleave4 = `(func (export "act_interleave4") (param $src i32) (param $stride i32) (param $vectors i32) (param $count i32) (param $dst i32)
  ${locals("i32", "j", "t", "from")}
  ${forLoop(
    "t",
    i32(0),
    i32(4),
    1,
    `${set("from", add(get("src"), mul(`(select ${get("t")} (i32.sub ${get("count")} (i32.const 1)) (i32.lt_u ${get("t")} ${get("count")}))`, get("stride"))))}
    ${forLoop("j", i32(0), get("vectors"), 1, `(v128.store ${add(get("dst"), `(i32.shl ${add(`(i32.shl ${get("j")} (i32.const 2))`, get("t"))} (i32.const 4))`)} (v128.load ${add(get("from"), `(i32.shl ${get("j")} (i32.const 4))`)}))`)}`,
  )})`;

/** Sums of int8 activations over each of `blocks` blocks of gp bytes (gp a multiple of 16). */
export const actBlockSums = `(func (export "act_block_sums") (param $q i32) (param $blocks i32) (param $gp i32) (param $dst i32)
  ${locals("i32", "b", "i")} ${locals("v128", "acc")}
  ${forLoop(
    "b",
    i32(0),
    get("blocks"),
    1,
    `${set("acc", "(v128.const i64x2 0 0)")}
    ${forLoop("i", i32(0), get("gp"), 16, set("acc", `(i32x4.add ${get("acc")} (i32x4.extadd_pairwise_i16x8_s (i16x8.extadd_pairwise_i8x16_s (v128.load ${add(get("q"), get("i"))}))))`))}
    (i32.store ${add(get("dst"), `(i32.shl ${get("b")} (i32.const 2))`)} ${hsumI32(get("acc"))})
    ${set("q", add(get("q"), get("gp")))}`,
  )})`;

/** 1 if any 2-bit field is 3 in `count` runs of `bytes` bytes (a multiple of 16), `stride` apart. */
export const hasCode3 = `(func (export "has_code3") (param $p i32) (param $count i32) (param $bytes i32) (param $stride i32) (result i32)
  ${locals("i32", "c", "i")} ${locals("v128", "v", "any")}
  ${set("any", "(v128.const i64x2 0 0)")}
  ${forLoop(
    "c",
    i32(0),
    get("count"),
    1,
    `${forLoop("i", i32(0), get("bytes"), 16, `${set("v", `(v128.load align=1 ${add(get("p"), get("i"))})`)} ${set("any", `(v128.or ${get("any")} (v128.and ${get("v")} (i16x8.shr_u ${get("v")} (i32.const 1))))`)}`)}
    ${set("p", add(get("p"), get("stride")))}`,
  )}
  (v128.any_true (v128.and ${get("any")} (v128.const i8x16 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55 0x55))))`;

/** 1 if any of n f16 values (n a multiple of 8) is Inf or NaN. */
export const f16NonFinite = `(func (export "f16_nonfinite") (param $p i32) (param $n i32) (result i32)
  ${locals("i32", "i")} ${locals("v128", "any", "e")}
  ${set("any", "(v128.const i64x2 0 0)")}
  ${set("e", "(v128.const i16x8 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00)")}
  ${forLoop("i", i32(0), get("n"), 8, set("any", `(v128.or ${get("any")} (i16x8.eq (v128.and (v128.load align=2 ${add(get("p"), `(i32.shl ${get("i")} (i32.const 1))`)}) ${get("e")}) ${get("e")}))`))}
  (v128.any_true ${get("any")}))`;

/**
 * b158's re-lay of ternary codes (t in -1..1, one byte each, rows x cols) into the I2_S byte order
 * with padded scale blocks: each group of g codes, then gp - g zeros, packed in units of 128 (or 64)
 * where byte i of a unit holds elements i, i + u/4, i + u/2, i + 3u/4 in bits 7:6 .. 1:0 as t + 1.
 * Returns -1, or the first row holding a value outside -1..1.
 */
export const relayCodes = `(func (export "relay_codes") (param $src i32) (param $rows i32) (param $cols i32) (param $g i32) (param $gp i32) (param $unit i32) (param $dst i32) (param $tmp i32) (result i32)
  ${locals("i32", "r", "k", "u", "h", "quarter", "at")} ${locals("v128", "bad", "one", "two", "c0", "c1", "c2", "c3")}
  ${set("quarter", `(i32.shr_u ${get("unit")} (i32.const 2))`)}
  ${set("one", "(v128.const i8x16 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1)")}
  ${set("two", "(v128.const i8x16 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2)")}
  ${forLoop(
    "r",
    i32(0),
    get("rows"),
    1,
    `${set("bad", "(v128.const i64x2 0 0)")}
    ${forLoop(
      "k",
      i32(0),
      get("cols"),
      get("g"),
      `(memory.copy ${get("tmp")} ${add(get("src"), get("k"))} ${get("g")})
      (memory.fill ${add(get("tmp"), get("g"))} (i32.const 0) (i32.sub ${get("gp")} ${get("g")}))
      ${forLoop(
        "u",
        i32(0),
        get("gp"),
        get("unit"),
        forLoop(
          "h",
          i32(0),
          get("quarter"),
          16,
          `${set("at", add(add(get("tmp"), get("u")), get("h")))}
          ${set("c0", `(i8x16.add (v128.load ${get("at")}) ${get("one")})`)}
          ${set("c1", `(i8x16.add (v128.load ${add(get("at"), get("quarter"))}) ${get("one")})`)}
          ${set("c2", `(i8x16.add (v128.load ${add(get("at"), `(i32.shl ${get("quarter")} (i32.const 1))`)}) ${get("one")})`)}
          ${set("c3", `(i8x16.add (v128.load ${add(get("at"), mul(get("quarter"), i32(3)))}) ${get("one")})`)}
          ${set("bad", `(v128.or ${get("bad")} (v128.or (v128.or (i8x16.gt_u ${get("c0")} ${get("two")}) (i8x16.gt_u ${get("c1")} ${get("two")})) (v128.or (i8x16.gt_u ${get("c2")} ${get("two")}) (i8x16.gt_u ${get("c3")} ${get("two")}))))`)}
          (v128.store align=1 ${get("dst")} (v128.or (v128.or (i8x16.shl ${get("c0")} (i32.const 6)) (i8x16.shl ${get("c1")} (i32.const 4))) (v128.or (i8x16.shl ${get("c2")} (i32.const 2)) ${get("c3")})))
          ${set("dst", add(get("dst"), i32(16)))}`,
        ),
      )}`,
    )}
    (if (v128.any_true ${get("bad")}) (then (return ${get("r")})))
    ${set("src", add(get("src"), get("cols")))}`,
  )}
  (i32.const -1))`;

/**
 * Ternary codes (int8) of n 16-bit sign-magnitude patterns (api.ts's threshold16): +-1 by the sign
 * bit where the 15 magnitude bits exceed `threshold`, else 0; 16 at a time, then one by one.
 */
export const thresholdCodes = `(func (export "threshold_codes") (param $src i32) (param $n i32) (param $threshold i32) (param $dst i32)
  ${locals("i32", "i", "end", "v")} ${locals("v128", "t", "mask", "one")}
  ${set("t", `(i16x8.splat ${get("threshold")})`)}
  ${set("mask", "(v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff)")}
  ${set("one", "(v128.const i16x8 1 1 1 1 1 1 1 1)")}
  ${set("end", `(i32.and ${get("n")} (i32.const -16))`)}
  ${forLoop(
    "i",
    i32(0),
    get("end"),
    16,
    (() => {
      const code = (offset: number) => {
        const w = `(v128.load offset=${offset} align=2 ${add(get("src"), `(i32.shl ${get("i")} (i32.const 1))`)})`;
        // (|w| > T ? -1 : 0) & (sign ? -1 : 1)
        return `(v128.and (i16x8.gt_s (v128.and ${w} ${get("mask")}) ${get("t")}) (v128.or (i16x8.shr_s ${w} (i32.const 15)) ${get("one")}))`;
      };
      return `(v128.store align=1 ${add(get("dst"), get("i"))} (i8x16.narrow_i16x8_s ${code(0)} ${code(16)}))`;
    })(),
  )}
  ${forLoop(
    "i",
    get("end"),
    get("n"),
    1,
    `${set("v", `(i32.load16_u ${add(get("src"), `(i32.shl ${get("i")} (i32.const 1))`)})`)}
    (i32.store8 ${add(get("dst"), get("i"))} (select (select (i32.const -1) (i32.const 1) (i32.and ${get("v")} (i32.const 0x8000))) (i32.const 0) (i32.gt_u (i32.and ${get("v")} (i32.const 0x7fff)) ${get("threshold")})))`,
  )})`;

/** One weight as f32, exactly (f16 Inf and NaN included): kind 0 f32, 1 f16, 2 bf16. */
const denseValue = (kind: string, p: string): string => `(if (result f32) (i32.eq ${kind} (i32.const 1))
    (then
      ${set("h", `(i32.load16_u ${p})`)}
      (f32.copysign
        (select
          (f32.reinterpret_i32 (i32.or (i32.const 0x7f800000) (i32.shl (i32.and ${get("h")} (i32.const 0x3ff)) (i32.const 13))))
          (f32.mul (f32.reinterpret_i32 (i32.shl (i32.and ${get("h")} (i32.const 0x7fff)) (i32.const 13))) (f32.const 0x1p112))
          (i32.eq (i32.and ${get("h")} (i32.const 0x7c00)) (i32.const 0x7c00)))
        (f32.reinterpret_i32 (i32.shl ${get("h")} (i32.const 16)))))
    (else (if (result f32) (i32.eq ${kind} (i32.const 2))
      (then (f32.reinterpret_i32 (i32.shl (i32.load16_u ${p}) (i32.const 16))))
      (else (f32.load ${p})))))`;

/**
 * The int8-rows copy of dense rows (api.ts): ws = f32(max|w| / 127), w8 = clamp(nearest(f32(w / ws)),
 * -127, 127) (0 when ws is 0; NaN gives 0), rows padded with zeros to kp.
 */
export const denseQuantRows = `(func (export "dense_quant_rows") (param $src i32) (param $kind i32) (param $rows i32) (param $cols i32) (param $kp i32) (param $dst i32) (param $scales i32)
  ${locals("i32", "r", "k", "h", "v", "size")} ${locals("f32", "amax", "ws", "x")}
  ${set("size", `(select (i32.const 4) (i32.const 2) (i32.eqz ${get("kind")}))`)}
  ${forLoop(
    "r",
    i32(0),
    get("rows"),
    1,
    `${set("amax", "(f32.const 0)")}
    ${forLoop("k", i32(0), get("cols"), 1, set("amax", `(f32.max ${get("amax")} (f32.abs ${denseValue(get("kind"), add(get("src"), mul(get("k"), get("size"))))}))`))}
    ${set("ws", `(f32.div ${get("amax")} (f32.const 127))`)}
    (f32.store ${add(get("scales"), `(i32.shl ${get("r")} (i32.const 2))`)} ${get("ws")})
    ${forLoop(
      "k",
      i32(0),
      get("cols"),
      1,
      `${set("x", denseValue(get("kind"), add(get("src"), mul(get("k"), get("size")))))}
      ${set("v", `(select (i32.const 0) (i32.trunc_sat_f32_s (f32.nearest (f32.div ${get("x")} ${get("ws")}))) (f32.eq ${get("ws")} (f32.const 0)))`)}
      ${set("v", `(select (i32.const 127) ${get("v")} (i32.gt_s ${get("v")} (i32.const 127)))`)}
      ${set("v", `(select (i32.const -127) ${get("v")} (i32.lt_s ${get("v")} (i32.const -127)))`)}
      (i32.store8 ${add(get("dst"), get("k"))} ${get("v")})`,
    )}
    (memory.fill ${add(get("dst"), get("cols"))} (i32.const 0) (i32.sub ${get("kp")} ${get("cols")}))
    ${set("src", add(get("src"), mul(get("cols"), get("size"))))}
    ${set("dst", add(get("dst"), get("kp")))}`,
  )})`;

/**
 * The chunk loop every thread runs, the caller included: claim a chunk (an atomic add; CLAIM_CLOSED
 * between dispatches makes late claims fail), run it, count it done; whoever finishes the last
 * chunk wakes the caller. The dispatch is read only after a successful claim, when it is complete.
 */
export function dispatcher(kernelCount: number): string {
  const ctrl = (word: number) => add(get("ctrl"), i32(word * 4));
  return `(func $run_chunk (param $dispatch i32) (param $idx i32) (param $scratch i32)
  ${locals("i32", "task", "first", "r0", "rpc")}
  ${set("task", add(get("dispatch"), i32(DISPATCH.tasksAt)))}
  (block $found (loop $find
    (br_if $found (i32.lt_u ${get("idx")} ${add(field(get("task"), TASK.firstChunk), field(get("task"), TASK.chunks))}))
    ${set("task", add(get("task"), i32(TASK.size)))}
    (br $find)))
  ${set("rpc", field(get("task"), TASK.rowsPerChunk))}
  ${set("r0", mul(`(i32.sub ${get("idx")} ${field(get("task"), TASK.firstChunk)})`, get("rpc")))}
  (call_indirect (type $kernel) ${get("task")} ${get("r0")}
    (select ${add(get("r0"), get("rpc"))} ${field(field(get("task"), TASK.matrix), 4)} (i32.lt_u ${add(get("r0"), get("rpc"))} ${field(field(get("task"), TASK.matrix), 4)}))
    ${get("scratch")}
    (i32.load ${get("task")})))
(func (export "work") (param $ctrl i32) (param $tid i32)
  ${locals("i32", "idx")}
  (block $out (loop $claim
    ${set("idx", `(i32.atomic.rmw.add ${ctrl(CONTROL.next)} (i32.const 1))`)}
    (br_if $out (i32.ge_u ${get("idx")} (i32.atomic.load ${ctrl(CONTROL.chunks)})))
    (call $run_chunk (i32.atomic.load ${ctrl(CONTROL.dispatch)}) ${get("idx")}
      ${add(`(i32.load ${ctrl(CONTROL.scratch)})`, mul(get("tid"), `(i32.load ${ctrl(CONTROL.scratchBytes)})`))})
    (if (i32.lt_u ${get("tid")} (i32.const 8)) (then (drop (i32.atomic.rmw.add ${add(ctrl(CONTROL.chunksRun), `(i32.shl ${get("tid")} (i32.const 2))`)} (i32.const 1)))))
    (if (i32.eq (i32.add (i32.atomic.rmw.add ${ctrl(CONTROL.done)} (i32.const 1)) (i32.const 1)) (i32.atomic.load ${ctrl(CONTROL.chunks)}))
      (then (drop (memory.atomic.notify ${ctrl(CONTROL.done)} (i32.const 1)))))
    (br $claim))))
(func $fault (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32) unreachable)
(table ${kernelCount} funcref)`;
}
