import { EXP32 } from "../reference.js";
import { ATTENTION, TASK } from "./layout.js";
import { add, field, forLoop, get, i32, locals, mul, set } from "./wat.js";

/**
 * Causal grouped-query attention as api.ts defines it, one dispatch row per (token, kv head): for
 * each query head of the group, the scores of every cached position (keys are stored transposed,
 * so lane j of a vector is position j and each lane sums over i in order), their max, exp32 and
 * sum, then the values weighted in j order (lane i of a vector is dimension i), divided by the
 * sum. Every sum is a chain of float32 adds in one lane, as the reference computes it; the loops
 * keep several independent chains in flight (16 positions, or 8 value vectors) so the add latency
 * does not bound them.
 */

const f32x4 = (value: number): string => `(v128.const f32x4 ${value} ${value} ${value} ${value})`;

/** exp32 of the four lanes of `x` (api.ts, reference.ts): the reference's operations, lane-wise. */
function exp32x4(x: string): string {
  const [c0, ...rest] = EXP32.poly;
  let p = f32x4(c0!);
  for (const c of rest) p = `(f32x4.add (f32x4.mul ${p} ${get("rr")}) ${f32x4(c)})`;
  const twoN = `(i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s ${get("nn")}) (v128.const i32x4 127 127 127 127)) (i32.const 23))`;
  return `(block (result v128)
      ${set("xx", x)}
      ${set("nn", `(f32x4.nearest (f32x4.mul ${get("xx")} ${f32x4(EXP32.log2e)}))`)}
      ${set("rr", `(f32x4.sub (f32x4.sub ${get("xx")} (f32x4.mul ${get("nn")} ${f32x4(EXP32.ln2Hi)})) (f32x4.mul ${get("nn")} ${f32x4(EXP32.ln2Lo)}))`)}
      (v128.andnot (f32x4.mul ${p} ${twoN}) (f32x4.lt ${get("xx")} ${f32x4(EXP32.min)})))`;
}

/** Score vectors of `blocks` x 4 positions from jb: acc_b += q[i] * K^T[i][jb + 4b ..], i in order. */
function scoreBlocks(blocks: number): string {
  const accs = Array.from({ length: blocks }, (_, b) => `s${b}`);
  return `${accs.map((a) => set(a, "(v128.const i64x2 0 0)")).join(" ")}
        ${set("kp", add(get("kt"), `(i32.shl ${get("jb")} (i32.const 2))`))}
        ${set("qi", get("qp"))}
        ${set("i", get("dp"))}
        (loop $dim${blocks}
          ${set("qv", `(v128.load32_splat ${get("qi")})`)}
          ${accs.map((a, b) => set(a, `(f32x4.add ${get(a)} (f32x4.mul ${get("qv")} (v128.load offset=${16 * b} ${get("kp")})))`)).join("\n          ")}
          ${set("qi", add(get("qi"), i32(4)))}
          ${set("kp", add(get("kp"), get("rowBytes")))}
          (br_if $dim${blocks} (local.tee $i (i32.sub ${get("i")} (i32.const 1)))))
        ${accs.map((a, b) => `(v128.store offset=${16 * b} ${add(get("scratch"), `(i32.shl ${get("jb")} (i32.const 2))`)} (f32x4.mul ${get(a)} ${get("cs")}))`).join(" ")}`;
}

/** `width` value vectors (4 dimensions each) from dimension vector vb: o += e_j * V[j][..], j in order. */
function valueChunk(width: number): string {
  const accs = Array.from({ length: width }, (_, w) => `o${w}`);
  return `${accs.map((a) => set(a, "(v128.const i64x2 0 0)")).join(" ")}
        ${set("vp", add(get("vg"), `(i32.shl ${get("vb")} (i32.const 4))`))}
        ${set("ep", get("scratch"))}
        ${set("j", get("n"))}
        (loop $pos${width}
          ${set("ev", `(v128.load32_splat ${get("ep")})`)}
          ${accs.map((a, w) => set(a, `(f32x4.add ${get(a)} (f32x4.mul ${get("ev")} (v128.load offset=${16 * w} ${get("vp")})))`)).join("\n          ")}
          ${set("ep", add(get("ep"), i32(4)))}
          ${set("vp", add(get("vp"), get("posBytes")))}
          (br_if $pos${width} (local.tee $j (i32.sub ${get("j")} (i32.const 1)))))
        ${accs.map((a, w) => `(v128.store offset=${16 * w} ${add(get("op"), `(i32.shl ${get("vb")} (i32.const 4))`)} (f32x4.div ${get(a)} ${get("sv")}))`).join(" ")}
        ${set("vb", add(get("vb"), i32(width)))}`;
}

export function attentionKernel(): string {
  return `(func $attention (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${locals("i32", "rec", "keys", "values", "stride", "kv", "dp", "group", "start", "act", "actStride", "out", "outStride")}
  ${locals("i32", "r", "t", "g", "hh", "h", "n", "nr", "jb", "j", "i", "vb", "qp", "qi", "op", "kt", "kp", "vg", "vp", "ep", "rowBytes", "posBytes", "vectors")}
  ${locals("f32", "m", "sum", "x")}
  ${locals("v128", "cs", "qv", "ev", "sv", "xx", "nn", "rr", "s0", "s1", "s2", "s3", ...Array.from({ length: 8 }, (_, w) => `o${w}`))}
  ${set("rec", field(get("task"), TASK.matrix))}
  ${set("keys", field(get("rec"), ATTENTION.keys))}
  ${set("values", field(get("rec"), ATTENTION.values))}
  ${set("stride", field(get("rec"), ATTENTION.positionStride))}
  ${set("kv", field(get("rec"), ATTENTION.kvHeads))}
  ${set("dp", field(get("rec"), ATTENTION.paddedDim))}
  ${set("group", field(get("rec"), ATTENTION.group))}
  ${set("start", field(get("rec"), ATTENTION.start))}
  ${set("cs", `(f32x4.splat (f32.load offset=${ATTENTION.scale} ${get("rec")}))`)}
  ${set("act", field(get("task"), TASK.act))}
  ${set("actStride", field(get("task"), TASK.actStride))}
  ${set("out", field(get("task"), TASK.out))}
  ${set("outStride", field(get("task"), TASK.outStride))}
  ${set("rowBytes", `(i32.shl ${get("stride")} (i32.const 2))`)}
  ${set("posBytes", `(i32.shl ${get("dp")} (i32.const 2))`)}
  ${set("vectors", `(i32.shr_u ${get("dp")} (i32.const 2))`)}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    1,
    `${set("t", `(i32.div_u ${get("r")} ${get("kv")})`)}
    ${set("g", `(i32.sub ${get("r")} ${mul(get("t"), get("kv"))})`)}
    ${set("n", add(add(get("start"), get("t")), i32(1)))}
    ${set("nr", `(i32.and ${add(get("n"), i32(3))} (i32.const -4))`)}
    ${set("kt", add(get("keys"), mul(mul(get("g"), get("dp")), get("rowBytes"))))}
    ${set("vg", add(get("values"), mul(mul(get("g"), get("stride")), get("posBytes"))))}
    ${forLoop(
      "hh",
      i32(0),
      get("group"),
      1,
      `${set("h", add(mul(get("g"), get("group")), get("hh")))}
      ${set("qp", add(add(get("act"), mul(get("t"), get("actStride"))), mul(get("h"), get("posBytes"))))}
      ${set("op", add(add(get("out"), mul(get("t"), get("outStride"))), mul(get("h"), get("posBytes"))))}
      ;; scores s_j = (q . K[j]) * c, 16 then 4 positions at a time (lanes past n are never read)
      ${set("jb", i32(0))}
      (block $wide_end (loop $wide
        (br_if $wide_end (i32.gt_u ${add(get("jb"), i32(16))} ${get("nr")}))
        ${scoreBlocks(4)}
        ${set("jb", add(get("jb"), i32(16)))}
        (br $wide)))
      (block $narrow_end (loop $narrow
        (br_if $narrow_end (i32.ge_u ${get("jb")} ${get("nr")}))
        ${scoreBlocks(1)}
        ${set("jb", add(get("jb"), i32(4)))}
        (br $narrow)))
      ;; max over j < n
      ${set("m", "(f32.const -inf)")}
      ${forLoop("j", i32(0), get("n"), 1, `${set("x", `(f32.load ${add(get("scratch"), `(i32.shl ${get("j")} (i32.const 2))`)})`)} ${set("m", `(select ${get("x")} ${get("m")} (f32.gt ${get("x")} ${get("m")}))`)}`)}
      ;; e_j = exp32(s_j - m) in place, then their sum in j order
      ${set("sv", `(f32x4.splat ${get("m")})`)}
      ${forLoop("jb", i32(0), get("nr"), 4, `(v128.store ${add(get("scratch"), `(i32.shl ${get("jb")} (i32.const 2))`)} ${exp32x4(`(f32x4.sub (v128.load ${add(get("scratch"), `(i32.shl ${get("jb")} (i32.const 2))`)}) ${get("sv")})`)})`)}
      ${set("sum", "(f32.const 0)")}
      ${forLoop("j", i32(0), get("n"), 1, set("sum", `(f32.add ${get("sum")} (f32.load ${add(get("scratch"), `(i32.shl ${get("j")} (i32.const 2))`)}))`))}
      ${set("sv", `(f32x4.splat ${get("sum")})`)}
      ;; out = (sum_j e_j V[j]) / sum, 8, 4, then 1 value vectors at a time
      ${set("vb", i32(0))}
      (block $v8_end (loop $v8
        (br_if $v8_end (i32.gt_u ${add(get("vb"), i32(8))} ${get("vectors")}))
        ${valueChunk(8)}
        (br $v8)))
      (block $v4_end (loop $v4
        (br_if $v4_end (i32.gt_u ${add(get("vb"), i32(4))} ${get("vectors")}))
        ${valueChunk(4)}
        (br $v4)))
      (block $v1_end (loop $v1
        (br_if $v1_end (i32.ge_u ${get("vb")} ${get("vectors")}))
        ${valueChunk(1)}
        (br $v1)))`,
    )}`,
  )})`;
}
