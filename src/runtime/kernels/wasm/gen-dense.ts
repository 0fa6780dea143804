import { DENSE, DENSE_PRESCALED, DenseLayout, TASK, type DenseLayoutId } from "./layout.js";
import { add, field, forLoop, get, hsumI32, i32, locals, mul, set } from "./wat.js";

/**
 * Dense rows (the output head) times float activations, four rows per pass, each token in turn
 * while the rows are in cache. Products are f32, summed in four f32 lanes (lane k mod 4), then
 * (l0 + l2) + (l1 + l3): the reference order.
 *
 * f16 has no conversion instruction in wasm: moving sign, exponent and mantissa to where an f32
 * has them gives the value times 2^-112, exactly (subnormals too). The driver multiplies x by 2^112 instead when that is
 * exact (|x| < 2^15); otherwise each weight is multiplied back. f16 Inf/NaN never reach here (such
 * matrices are kept as f32).
 */
// word interleaves (punpcklwd / punpckhwd; V8 turns other patterns into two pshufb and a por)
const LOW_HALVES = "0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23";
const HIGH_HALVES = "8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31";
const F16_HIGH_MASK = "(v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)";
const TWO_112 = "(v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)";

/**
 * Four f32 from half of local `v` (8 f16 or bf16). bf16: each value to the top of a lane. f16: the
 * top half of each f32 is sign | 000 | exponent | mantissa[9:3] (an arithmetic shift by 3, masked),
 * the bottom half mantissa[2:0] << 13; both halves are computed once per 8 values (locals fhi, flo).
 */
function halfToF32(layout: DenseLayoutId, v: string, high: boolean, rescale: boolean): string {
  const pattern = high ? HIGH_HALVES : LOW_HALVES;
  if (layout === DenseLayout.bf16) return `(i8x16.shuffle ${pattern} (v128.const i64x2 0 0) ${get(v)})`;
  const value = `(i8x16.shuffle ${pattern} ${get("flo")} ${get("fhi")})`;
  return rescale ? `(f32x4.mul ${value} ${TWO_112})` : value;
}

function splitHalves(layout: DenseLayoutId, v: string): string {
  if (layout !== DenseLayout.f16) return "";
  return `${set("fhi", `(v128.and (i16x8.shr_s ${get(v)} (i32.const 3)) ${F16_HIGH_MASK})`)} ${set("flo", `(i16x8.shl ${get(v)} (i32.const 13))`)}`;
}

/** The 16-element step of one row (local p{r}) into acc{r}; x in locals x0..x3. */
function floatStep(layout: DenseLayoutId, r: number, rescale: boolean): string {
  const p = get(`p${r}`);
  const acc = `acc${r}`;
  const addProduct = (w: string, j: number) => set(acc, `(f32x4.add ${get(acc)} (f32x4.mul ${w} ${get(`x${j}`)}))`);
  if (layout === DenseLayout.f32) return [0, 1, 2, 3].map((j) => addProduct(`(v128.load offset=${16 * j} align=4 ${p})`, j)).join(" ");
  // 8 values per row and step: longer steps let V8 hoist every row's loads and spill
  return (
    set("v", `(v128.load align=2 ${p})`) +
    splitHalves(layout, "v") +
    addProduct(halfToF32(layout, "v", false, rescale), 0) +
    addProduct(halfToF32(layout, "v", true, rescale), 1)
  );
}

/**
 * int8 rows: the software prefetch of the ternary GEMV (gen-ternary.ts, touchAhead). Each step
 * reads 16 bytes of each of four rows and loads, and drops, one cache line of the next four rows,
 * so they are on their way when their pass starts: the 2-thread int8 head's median went from
 * 11.9-15.8 to 13.6-19.1 GMAC/s. Not for f16, bf16 or f32 rows: the f16 head is bound by its
 * decode, and was no faster.
 * At the end of the thread's range the touch stays on the pass's first row (tstep 0).
 */
function touchStart(): string {
  const ahead = `(i32.le_u ${add(get("r"), i32(8))} ${get("r1")})`;
  return `${set("tp", `(select ${add(get("b0"), `(i32.shl ${get("rowBytes")} (i32.const 2))`)} ${get("b0")} ${ahead})`)} ${set("tstep", `(select (i32.const 64) (i32.const 0) ${ahead})`)}`;
}

function touchNext(): string {
  return `(drop (i32.load ${get("tp")})) ${set("tp", add(get("tp"), get("tstep")))}`;
}

export function denseKernel(layout: DenseLayoutId, name: string): string {
  const rows = [0, 1, 2, 3];
  const elementBytes = layout === DenseLayout.f32 ? 4 : layout === DenseLayout.int8Rows ? 1 : 2;
  const loopFor = (rescale: boolean): string => {
    if (layout === DenseLayout.int8Rows) {
      // x is int8, widened to i16: 16 elements = 2 vectors; weights: 16 bytes per row
      return `(loop $step
          ${set("x0", `(v128.load ${get("xp")})`)} ${set("x1", `(v128.load offset=16 ${get("xp")})`)}
          ${rows
            .map(
              (r) =>
                `${set("v", `(v128.load align=1 ${get(`p${r}`)})`)} ${set(`acc${r}`, `(i32x4.add ${get(`acc${r}`)} (i32x4.add (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_s ${get("v")}) ${get("x0")}) (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_s ${get("v")}) ${get("x1")})))`)}`,
            )
            .join("\n          ")}
          ${rows.map((r) => set(`p${r}`, add(get(`p${r}`), i32(16)))).join(" ")}
          ${touchNext()}
          ${set("xp", add(get("xp"), i32(32)))}
          (br_if $step (local.tee $n (i32.sub ${get("n")} (i32.const 1)))))`;
    }
    const values = layout === DenseLayout.f32 ? 16 : 8;
    return `(loop $step
          ${[0, 1, 2, 3].slice(0, values / 4).map((j) => set(`x${j}`, `(v128.load offset=${16 * j} ${get("xp")})`)).join(" ")}
          ${rows.map((r) => floatStep(layout, r, rescale)).join("\n          ")}
          ${rows.map((r) => set(`p${r}`, add(get(`p${r}`), i32(values * elementBytes)))).join(" ")}
          ${set("xp", add(get("xp"), i32(values * 4)))}
          (br_if $step (local.tee $n (i32.sub ${get("n")} (i32.const 1)))))`;
  };
  const inner =
    layout === DenseLayout.f16
      ? `(if (i32.and ${get("flags")} (i32.const ${DENSE_PRESCALED})) (then ${loopFor(false)}) (else ${loopFor(true)}))`
      : loopFor(false);
  const store = (r: number): string => {
    const at = add(get("out0"), `(i32.shl ${add(get("r"), i32(r))} (i32.const 2))`);
    const value =
      layout === DenseLayout.int8Rows
        ? `(f32.demote_f64 (f64.div (f64.mul (f64.promote_f32 (f32.load ${add(get("scales"), `(i32.shl ${add(get("r"), i32(r))} (i32.const 2))`)})) (f64.convert_i32_s ${hsumI32(get(`acc${r}`))})) ${get("s")}))`
        : `(f32.add (f32.add (f32x4.extract_lane 0 ${get(`acc${r}`)}) (f32x4.extract_lane 2 ${get(`acc${r}`)})) (f32.add (f32x4.extract_lane 1 ${get(`acc${r}`)}) (f32x4.extract_lane 3 ${get(`acc${r}`)})))`;
    return `(if (i32.gt_u ${get("nrows")} ${i32(r)}) (then (f32.store ${at} ${value})))`;
  };
  return `(func $dense_${name} (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${locals("i32", "mat", "w", "rowBytes", "paddedCols", "scales", "tokens", "act", "actStride", "actScale", "out", "outStride", "flags")}
  ${locals("i32", "r", "t", "n", "nrows", "xp", "out0", "p0", "p1", "p2", "p3", "b0", "b1", "b2", "b3", "tp", "tstep")}
  ${locals("f64", "s")}
  ${locals("v128", "x0", "x1", "x2", "x3", "v", "fhi", "flo", "acc0", "acc1", "acc2", "acc3")}
  ${set("mat", field(get("task"), TASK.matrix))}
  ${set("w", field(get("mat"), DENSE.weights))}
  ${set("rowBytes", field(get("mat"), DENSE.rowBytes))}
  ${set("paddedCols", field(get("mat"), DENSE.paddedCols))}
  ${set("scales", field(get("mat"), DENSE.scales))}
  ${set("tokens", field(get("task"), TASK.tokens))}
  ${set("act", field(get("task"), TASK.act))}
  ${set("actStride", field(get("task"), TASK.actStride))}
  ${set("actScale", field(get("task"), TASK.actScale))}
  ${set("out", field(get("task"), TASK.out))}
  ${set("outStride", field(get("task"), TASK.outStride))}
  ${set("flags", field(get("task"), TASK.flags))}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    4,
    `${set("nrows", `(i32.sub ${get("r1")} ${get("r")})`)}
    ${rows.map((r) => set(`b${r}`, add(get("w"), mul(r === 0 ? get("r") : `(select ${add(get("r"), i32(r))} ${get("r")} (i32.gt_u ${get("nrows")} ${i32(r)}))`, get("rowBytes"))))).join("\n    ")}
    ${forLoop(
      "t",
      i32(0),
      get("tokens"),
      1,
      `${set("xp", add(get("act"), mul(get("t"), get("actStride"))))}
      ${set("out0", add(get("out"), mul(get("t"), get("outStride"))))}
      ${layout === DenseLayout.int8Rows ? set("s", `(f64.promote_f32 (f32.load ${add(get("actScale"), `(i32.shl ${get("t")} (i32.const 2))`)}))`) : ""}
      ${rows.map((r) => `${set(`p${r}`, get(`b${r}`))} ${set(`acc${r}`, "(v128.const i64x2 0 0)")}`).join(" ")}
      ${layout === DenseLayout.int8Rows ? touchStart() : ""}
      ${set("n", `(i32.shr_u ${get("paddedCols")} (i32.const ${layout === DenseLayout.f16 || layout === DenseLayout.bf16 ? 3 : 4}))`)}
      ${inner}
      ${rows.map(store).join("\n      ")}`,
    )}`,
  )})`;
}

/**
 * Dense rows times many tokens (eval needs the head at every position): two rows at a time are
 * decoded once to exact float32 in thread scratch (f16: the 2^-112 value times 2^112, exact), then
 * a 2-row x 4-token micro-kernel runs over every token, with the GEMV's arithmetic: lane k mod 4,
 * k in order, then (l0 + l2) + (l1 + l3). f32 rows are read in place. Tokens past the last of a
 * 4-token group repeat it and are not stored.
 */
export function denseGemmKernel(layout: DenseLayoutId, name: string): string {
  const accs = [0, 1].flatMap((r) => [0, 1, 2, 3].map((t) => `a${r}${t}`));
  const decodeRow = (row: string, dst: string): string => {
    if (layout === DenseLayout.f32) return "";
    const elements = (v: string, high: boolean) => {
      const pattern = high ? HIGH_HALVES : LOW_HALVES;
      if (layout === DenseLayout.bf16) return `(i8x16.shuffle ${pattern} (v128.const i64x2 0 0) ${get(v)})`;
      return `(f32x4.mul (i8x16.shuffle ${pattern} ${get("flo")} ${get("fhi")}) ${TWO_112})`;
    };
    return `${set("src", add(get("w"), mul(row, get("rowBytes"))))} ${set("dp", dst)}
      ${set("n", `(i32.shr_u ${get("paddedCols")} (i32.const 3))`)}
      (loop $decode
        ${set("v", `(v128.load align=2 ${get("src")})`)}
        ${splitHalves(layout, "v")}
        (v128.store ${get("dp")} ${elements("v", false)})
        (v128.store offset=16 ${get("dp")} ${elements("v", true)})
        ${set("src", add(get("src"), i32(16)))} ${set("dp", add(get("dp"), i32(32)))}
        (br_if $decode (local.tee $n (i32.sub ${get("n")} (i32.const 1)))))`;
  };
  const rowAddress = (r: number) => (layout === DenseLayout.f32 ? add(get("w"), mul(r === 0 ? get("r") : get("r1st"), get("rowBytes"))) : r === 0 ? get("scratch") : add(get("scratch"), `(i32.shl ${get("paddedCols")} (i32.const 2))`));
  const store = (r: number, t: number) => {
    const acc = get(`a${r}${t}`);
    const value = `(f32.add (f32.add (f32x4.extract_lane 0 ${acc}) (f32x4.extract_lane 2 ${acc})) (f32.add (f32x4.extract_lane 1 ${acc}) (f32x4.extract_lane 3 ${acc})))`;
    const cond = r === 0 ? `(i32.lt_u ${add(get("t"), i32(t))} ${get("tokens")})` : `(i32.and ${get("two")} (i32.lt_u ${add(get("t"), i32(t))} ${get("tokens")}))`;
    return `(if ${cond} (then (f32.store ${add(add(get("out"), mul(add(get("t"), i32(t)), get("outStride"))), `(i32.shl ${add(get("r"), i32(r))} (i32.const 2))`)} ${value})))`;
  };
  return `(func $dense_gemm_${name} (type $kernel) (param $task i32) (param $r0 i32) (param $r1 i32) (param $scratch i32)
  ${locals("i32", "mat", "w", "rowBytes", "paddedCols", "tokens", "act", "actStride", "out", "outStride", "r", "r1st", "two", "t", "n", "src", "dp", "p0", "p1", "x0", "x1", "x2", "x3", "last")}
  ${locals("v128", "v", "fhi", "flo", "w0", "w1", "xv", ...accs)}
  ${set("mat", field(get("task"), TASK.matrix))}
  ${set("w", field(get("mat"), DENSE.weights))}
  ${set("rowBytes", field(get("mat"), DENSE.rowBytes))}
  ${set("paddedCols", field(get("mat"), DENSE.paddedCols))}
  ${set("tokens", field(get("task"), TASK.tokens))}
  ${set("act", field(get("task"), TASK.act))}
  ${set("actStride", field(get("task"), TASK.actStride))}
  ${set("out", field(get("task"), TASK.out))}
  ${set("outStride", field(get("task"), TASK.outStride))}
  ${set("last", `(i32.sub ${get("tokens")} (i32.const 1))`)}
  ${forLoop(
    "r",
    get("r0"),
    get("r1"),
    2,
    `${set("two", `(i32.lt_u ${add(get("r"), i32(1))} ${get("r1")})`)}
    ${set("r1st", `(select ${add(get("r"), i32(1))} ${get("r")} ${get("two")})`)}
    ${decodeRow(get("r"), get("scratch"))}
    ${decodeRow(get("r1st"), add(get("scratch"), `(i32.shl ${get("paddedCols")} (i32.const 2))`))}
    ${forLoop(
      "t",
      i32(0),
      get("tokens"),
      4,
      `${[0, 1, 2, 3].map((tt) => set(`x${tt}`, add(get("act"), mul(tt === 0 ? get("t") : `(select ${add(get("t"), i32(tt))} ${get("last")} (i32.lt_u ${add(get("t"), i32(tt))} ${get("tokens")}))`, get("actStride"))))).join(" ")}
      ${accs.map((a) => set(a, "(v128.const i64x2 0 0)")).join(" ")}
      ${set("p0", rowAddress(0))} ${set("p1", rowAddress(1))}
      ${set("n", `(i32.shr_u ${get("paddedCols")} (i32.const 2))`)}
      (loop $step
        ${set("w0", `(v128.load align=4 ${get("p0")})`)} ${set("w1", `(v128.load align=4 ${get("p1")})`)}
        ${[0, 1, 2, 3]
          .map((tt) => `${set("xv", `(v128.load ${get(`x${tt}`)})`)} ${set(`a0${tt}`, `(f32x4.add ${get(`a0${tt}`)} (f32x4.mul ${get("w0")} ${get("xv")}))`)} ${set(`a1${tt}`, `(f32x4.add ${get(`a1${tt}`)} (f32x4.mul ${get("w1")} ${get("xv")}))`)}`)
          .join("\n        ")}
        ${["p0", "p1", "x0", "x1", "x2", "x3"].map((q) => set(q, add(get(q), i32(16)))).join(" ")}
        (br_if $step (local.tee $n (i32.sub ${get("n")} (i32.const 1)))))
      ${[0, 1].flatMap((r) => [0, 1, 2, 3].map((t) => store(r, t))).join("\n      ")}`,
    )}`,
  )})`;
}
