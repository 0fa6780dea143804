import { ROWS, TASK } from "./layout.js";
import { add, field, forLoop, get, i32, locals, mul, set } from "./wat.js";

/**
 * The forward pass's element-wise steps, with the reference's float64 arithmetic (api.ts): the
 * RMSNorm sum of squares is one float64 chain in element order (scalar: a SIMD tree would sum in
 * another order), the rest is element by element in float64 lanes, which gives every element
 * exactly what scalar code gives. One dispatch row is one token's row (rmsNorm) or a run of
 * elements (relu2Gate).
 */

const HIGH_HALF = "8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15";
const LOW_LANES = "0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23";

/** Four float32 lanes from two f64x2 results, each rounded to float32. */
const demote4 = (lo: string, hi: string): string => `(i8x16.shuffle ${LOW_LANES} (f32x4.demote_f64x2_zero ${lo}) (f32x4.demote_f64x2_zero ${hi}))`;
const promoteLow = (v: string): string => `(f64x2.promote_low_f32x4 ${v})`;
const promoteHigh = (v: string): string => `(f64x2.promote_low_f32x4 (i8x16.shuffle ${HIGH_HALF} ${v} ${v}))`;

const TASK_FIELDS = `${set("rec", field(get("task"), TASK.matrix))}
  ${set("width", field(get("rec"), ROWS.width))}
  ${set("other", field(get("rec"), ROWS.other))}
  ${set("act", field(get("task"), TASK.act))}
  ${set("actStride", field(get("task"), TASK.actStride))}
  ${set("out", field(get("task"), TASK.out))}
  ${set("outStride", field(get("task"), TASK.outStride))}`;

export function rmsNormKernel(): string {
  const at = (base: string) => add(get(base), `(i32.shl ${get("i")} (i32.const 2))`);
  const scaled = (x: string, w: string) => `(f64x2.mul (f64x2.mul ${x} ${get("kv")}) ${w})`;
  return `(func $rms_norm (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${locals("i32", "rec", "width", "other", "act", "actStride", "out", "outStride", "r", "i", "end", "xp", "op")}
  ${locals("f64", "eps", "ss", "v", "k")} ${locals("v128", "kv", "xv", "wv")}
  ${TASK_FIELDS}
  ${set("eps", `(f64.load offset=${ROWS.eps} ${get("rec")})`)}
  ${set("end", `(i32.and ${get("width")} (i32.const -4))`)}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    1,
    `${set("xp", add(get("act"), mul(get("r"), get("actStride"))))}
    ${set("op", add(get("out"), mul(get("r"), get("outStride"))))}
    ${set("ss", "(f64.const 0)")}
    ${forLoop("i", i32(0), get("width"), 1, `${set("v", `(f64.promote_f32 (f32.load ${at("xp")}))`)} ${set("ss", `(f64.add ${get("ss")} (f64.mul ${get("v")} ${get("v")}))`)}`)}
    ${set("k", `(f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${get("ss")} (f64.convert_i32_u ${get("width")})) ${get("eps")})))`)}
    ${set("kv", `(f64x2.splat ${get("k")})`)}
    ${forLoop(
      "i",
      i32(0),
      get("end"),
      4,
      `${set("xv", `(v128.load ${at("xp")})`)} ${set("wv", `(v128.load ${at("other")})`)}
      (v128.store ${at("op")} ${demote4(scaled(promoteLow(get("xv")), promoteLow(get("wv"))), scaled(promoteHigh(get("xv")), promoteHigh(get("wv"))))})`,
    )}
    ${forLoop("i", get("end"), get("width"), 1, `(f32.store ${at("op")} (f32.demote_f64 (f64.mul (f64.mul (f64.promote_f32 (f32.load ${at("xp")})) ${get("k")}) (f64.promote_f32 (f32.load ${at("other")})))))`)}`,
  )})`;
}

/** gate = f32((r * r) * up), r = gate > 0 ? gate : 0 (f32x4.pmax(0, gate): NaN and -0 give 0), rows of `width` elements, the last row to `count`. */
export function relu2GateKernel(): string {
  const at = (base: string) => add(get(base), `(i32.shl ${get("i")} (i32.const 2))`);
  const gated = (r: string, u: string) => `(f64x2.mul (f64x2.mul ${r} ${r}) ${u})`;
  return `(func $relu2_gate (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${locals("i32", "rec", "width", "other", "act", "actStride", "out", "outStride", "count", "i", "first", "last", "end")}
  ${locals("f32", "g")} ${locals("f64", "x")} ${locals("v128", "rv", "uv")}
  ${TASK_FIELDS}
  ${set("count", field(get("rec"), ROWS.count))}
  ${set("first", mul(get("r0"), get("width")))}
  ${set("last", `(select ${mul(get("r1"), get("width"))} ${get("count")} (i32.lt_u ${mul(get("r1"), get("width"))} ${get("count")}))`)}
  ${set("end", add(get("first"), `(i32.and (i32.sub ${get("last")} ${get("first")}) (i32.const -4))`))}
  ${forLoop(
    "i",
    get("first"),
    get("end"),
    4,
    `${set("rv", `(f32x4.pmax (v128.const i64x2 0 0) (v128.load ${at("act")}))`)} ${set("uv", `(v128.load ${at("other")})`)}
    (v128.store ${at("act")} ${demote4(gated(promoteLow(get("rv")), promoteLow(get("uv"))), gated(promoteHigh(get("rv")), promoteHigh(get("uv"))))})`,
  )}
  ${forLoop(
    "i",
    get("end"),
    get("last"),
    1,
    `${set("g", `(f32.load ${at("act")})`)}
    ${set("x", `(f64.promote_f32 (select ${get("g")} (f32.const 0) (f32.gt ${get("g")} (f32.const 0))))`)}
    (f32.store ${at("act")} (f32.demote_f64 (f64.mul (f64.mul ${get("x")} ${get("x")}) (f64.promote_f32 (f32.load ${at("other")})))))`,
  )})`;
}
