import { thresholdCodes } from "../../runtime/kernels/wasm/gen-support.js";
import { add, forLoop, get, i32, locals, set } from "../../runtime/kernels/wasm/wat.js";

/**
 * The converter's hot loops as WebAssembly SIMD128 text, generated at build time (scripts/build-wasm.mjs
 * assembles it with wabt). Each function does exactly what its TypeScript counterpart in src/pack
 * does, byte for byte and, for the absmean sum, addition for addition (convert-kernels.spec.ts
 * checks them against each other). Pointers are byte offsets into the module's one memory.
 */

const splat8 = (value: number): string => `(v128.const i8x16 ${Array(16).fill(value & 0xff).join(" ")})`;
const splat16 = (value: number): string => `(v128.const i16x8 ${Array(8).fill(value & 0xffff).join(" ")})`;
const splat32 = (value: number): string => `(v128.const i32x4 ${Array(4).fill(value | 0).join(" ")})`;
const load = (pointer: string, offset = 0): string => `(v128.load offset=${offset} align=1 ${pointer})`;
const store = (pointer: string, value: string, offset = 0): string => `(v128.store offset=${offset} align=1 ${pointer} ${value})`;
const or = (...values: string[]): string => values.reduce((a, b) => `(v128.or ${a} ${b})`);
/** The 2-bit field at `shift` of every byte, as the code t = field - 1. */
const field = (bytes: string, shift: number): string => `(i8x16.sub (v128.and ${shift === 0 ? bytes : `(i8x16.shr_u ${bytes} (i32.const ${shift}))`} ${splat8(3)}) ${splat8(1)})`;
/** t + 1 of 16 codes: 0, 1, 2 for -1, 0, +1 (anything else is not ternary: above 2, unsigned). */
const plusOne = (codes: string): string => `(i8x16.add ${codes} ${splat8(1)})`;
/** Bit 0: the payload holds a 2-bit code 3; bit 1: it decodes to other codes; bit 2: some code is nonzero. */
const CHECK_RESULT = `(i32.or (i32.or (v128.any_true (v128.and ${get("three")} ${splat8(0x55)})) (i32.shl (v128.any_true ${get("diff")}) (i32.const 1))) (i32.shl (v128.any_true ${get("nonzero")}) (i32.const 2)))`;

/**
 * Pass 1 of absmean over 16-bit floats (ternarize.ts, AbsmeanAccumulator.sumHalves): `groups` runs
 * of 16 bytes (8 weights, four pairs) add to the four float64 partial sums at `acc` (a, b, c, d),
 * pair k of each run to partial k, each pair's two magnitudes summed in float64 first. BF16 is
 * the high half of an f32; an F16 magnitude moved into an f32 is its value times 2^-112, exactly
 * (subnormals included), and so is the float64 sum of two of them, which 2^112 scales back. For F16
 * returns 1, leaving `acc` alone, when a weight is Inf or NaN (the caller sums the piece itself,
 * to report it); BF16's Inf and NaN convert exactly and propagate into the sums, as in TypeScript.
 */
function absmeanHalves(dtype: "bf16" | "f16"): string {
  const f16 = dtype === "f16";
  const lowHalves = f16 ? `(i32x4.shl (v128.and ${get("m")} ${splat32(0xffff)}) (i32.const 13))` : `(i32x4.shl ${get("m")} (i32.const 16))`;
  const highHalves = f16 ? `(i32x4.shl (i32x4.shr_u ${get("m")} (i32.const 16)) (i32.const 13))` : `(v128.and ${get("m")} ${splat32(0xffff0000)})`;
  const scaled = (sum: string) => (f16 ? `(f64x2.mul ${sum} (v128.const f64x2 0x1p112 0x1p112))` : sum);
  const pairSums = (even: string, odd: string) => scaled(`(f64x2.add (f64x2.promote_low_f32x4 ${even}) (f64x2.promote_low_f32x4 ${odd}))`);
  const high = (v: string) => `(i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${v} ${v})`;
  return `(func (export "absmean_${dtype}") (param $src i32) (param $groups i32) (param $acc i32) (result i32)
  ${locals("i32", "end")} ${locals("v128", "v", "m", "even", "odd", "ab", "cd", "special")}
  ${set("ab", `(v128.load ${get("acc")})`)}
  ${set("cd", `(v128.load offset=16 ${get("acc")})`)}
  ${set("special", "(v128.const i64x2 0 0)")}
  ${set("end", add(get("src"), `(i32.shl ${get("groups")} (i32.const 4))`))}
  (block $done (loop $next
    (br_if $done (i32.ge_u ${get("src")} ${get("end")}))
    ${set("v", load(get("src")))}
    ${f16 ? set("special", `(v128.or ${get("special")} (i16x8.eq (v128.and ${get("v")} ${splat16(0x7c00)}) ${splat16(0x7c00)}))`) : ""}
    ${set("m", `(v128.and ${get("v")} ${splat32(0x7fff7fff)})`)}
    ${set("even", lowHalves)}
    ${set("odd", highHalves)}
    ${set("ab", `(f64x2.add ${get("ab")} ${pairSums(get("even"), get("odd"))})`)}
    ${set("cd", `(f64x2.add ${get("cd")} ${pairSums(high(get("even")), high(get("odd")))})`)}
    ${set("src", add(get("src"), i32(16)))}
    (br $next)))
  (if (v128.any_true ${get("special")}) (then (return (i32.const 1))))
  (v128.store ${get("acc")} ${get("ab")})
  (v128.store offset=16 ${get("acc")} ${get("cd")})
  (i32.const 0))`;
}

/** Pass 2 for F32 (ternarize.ts, codeOf): x = f32(w * inv), +1 above 0.5, -1 below -0.5, else 0. */
const codeF32 = `(func (export "code_f32") (param $src i32) (param $n i32) (param $inv f32) (param $dst i32)
  ${locals("i32", "i", "end", "p")} ${locals("f32", "x")} ${locals("v128", "s")}
  ${set("s", `(f32x4.splat ${get("inv")})`)}
  ${set("end", `(i32.and ${get("n")} (i32.const -16))`)}
  ${forLoop(
    "i",
    i32(0),
    get("end"),
    16,
    `${set("p", add(get("src"), `(i32.shl ${get("i")} (i32.const 2))`))}
    ${store(add(get("dst"), get("i")), `(i8x16.narrow_i16x8_s (i16x8.narrow_i32x4_s ${f32Codes(0)} ${f32Codes(16)}) (i16x8.narrow_i32x4_s ${f32Codes(32)} ${f32Codes(48)}))`)}`,
  )}
  ${forLoop(
    "i",
    get("end"),
    get("n"),
    1,
    `${set("x", `(f32.mul (f32.load ${add(get("src"), `(i32.shl ${get("i")} (i32.const 2))`)}) ${get("inv")})`)}
    (i32.store8 ${add(get("dst"), get("i"))} (select (i32.const 1) (select (i32.const -1) (i32.const 0) (f32.lt ${get("x")} (f32.const -0.5))) (f32.gt ${get("x")} (f32.const 0.5))))`,
  )})`;

function f32Codes(offset: number): string {
  const x = `(f32x4.mul ${load(get("p"), offset)} ${get("s")})`;
  return `(v128.or (v128.and (f32x4.gt ${x} (v128.const f32x4 0.5 0.5 0.5 0.5)) ${splat32(1)}) (f32x4.lt ${x} (v128.const f32x4 -0.5 -0.5 -0.5 -0.5)))`;
}

/**
 * I2_S (i2s.ts): `n` codes (a multiple of the block) in blocks of `block` (128 or 64); byte g of a
 * block holds elements g, g + B/4, g + B/2, g + 3B/4 in bits 7:6 .. 1:0 as t + 1. Returns 1 when a
 * code is not ternary. The f32 scale and padding after the codes are the caller's.
 */
function packI2s(block: 128 | 64): string {
  const quarter = block / 4;
  const vectors = Array.from({ length: quarter / 16 }, (_, g) => {
    const v = (k: number) => plusOne(load(get("codes"), 16 * g + k * quarter));
    return `${set("v0", v(0))} ${set("v1", v(1))} ${set("v2", v(2))} ${set("v3", v(3))}
    ${set("high", `(i8x16.max_u (i8x16.max_u ${get("high")} (i8x16.max_u ${get("v0")} ${get("v1")})) (i8x16.max_u ${get("v2")} ${get("v3")}))`)}
    ${store(get("dst"), or(`(i8x16.shl ${get("v0")} (i32.const 6))`, `(i8x16.shl ${get("v1")} (i32.const 4))`, `(i8x16.shl ${get("v2")} (i32.const 2))`, get("v3")), 16 * g)}`;
  });
  return `(func (export "pack_i2s_${block}") (param $codes i32) (param $n i32) (param $dst i32) (result i32)
  ${locals("i32", "end")} ${locals("v128", "v0", "v1", "v2", "v3", "high")}
  ${set("high", "(v128.const i64x2 0 0)")}
  ${set("end", add(get("codes"), get("n")))}
  (block $done (loop $next
    (br_if $done (i32.ge_u ${get("codes")} ${get("end")}))
    ${vectors.join("\n    ")}
    ${set("codes", add(get("codes"), i32(block)))}
    ${set("dst", add(get("dst"), i32(quarter)))}
    (br $next)))
  (v128.any_true ${highAbove2})
  )`;
}

const highAbove2 = `(i8x16.gt_u ${get("high")} ${splat8(2)})`;

/** Decodes `n` codes of I2_S blocks at `payload` and compares them with `codes` (CHECK_RESULT). */
function checkI2s(block: 128 | 64): string {
  const quarter = block / 4;
  const vectors = Array.from({ length: quarter / 16 }, (_, g) => {
    const c = (k: number) => load(get("codes"), 16 * g + k * quarter);
    return `${set("b", load(get("payload"), 16 * g))}
    ${set("three", `(v128.or ${get("three")} (v128.and ${get("b")} (i8x16.shr_u ${get("b")} (i32.const 1))))`)}
    ${set("c0", c(0))} ${set("c1", c(1))} ${set("c2", c(2))} ${set("c3", c(3))}
    ${set("nonzero", or(get("nonzero"), get("c0"), get("c1"), get("c2"), get("c3")))}
    ${set("diff", or(get("diff"), `(v128.xor ${field(get("b"), 6)} ${get("c0")})`, `(v128.xor ${field(get("b"), 4)} ${get("c1")})`, `(v128.xor ${field(get("b"), 2)} ${get("c2")})`, `(v128.xor ${field(get("b"), 0)} ${get("c3")})`))}`;
  });
  return `(func (export "check_i2s_${block}") (param $payload i32) (param $codes i32) (param $n i32) (result i32)
  ${locals("i32", "end")} ${locals("v128", "b", "c0", "c1", "c2", "c3", "three", "diff", "nonzero")}
  ${set("end", add(get("codes"), get("n")))}
  (block $done (loop $next
    (br_if $done (i32.ge_u ${get("codes")} ${get("end")}))
    ${vectors.join("\n    ")}
    ${set("codes", add(get("codes"), i32(block)))}
    ${set("payload", add(get("payload"), i32(quarter)))}
    (br $next)))
  ${CHECK_RESULT})`;
}

/**
 * TQ2_0 (tq.ts): `blocks` blocks of 256 codes to 66 bytes each; byte 32j + m holds elements
 * 128j + 32n + m at bits 2n as t + 1, then the f16 d: `d` for a block with a nonzero code, else 0.
 * Returns 1 when a code is not ternary.
 */
const packTq2_0 = `(func (export "pack_tq2_0") (param $codes i32) (param $blocks i32) (param $dst i32) (param $d i32) (result i32)
  ${locals("i32", "b")} ${locals("v128", "v0", "v1", "v2", "v3", "high", "any")}
  ${set("high", "(v128.const i64x2 0 0)")}
  ${forLoop(
    "b",
    i32(0),
    get("blocks"),
    1,
    `${set("any", "(v128.const i64x2 0 0)")}
    ${[0, 16, 128, 144]
      .map((start) => {
        const v = (n: number) => load(get("codes"), start + 32 * n);
        return `${set("v0", v(0))} ${set("v1", v(1))} ${set("v2", v(2))} ${set("v3", v(3))}
    ${set("any", or(get("any"), get("v0"), get("v1"), get("v2"), get("v3")))}
    ${set("v0", plusOne(get("v0")))} ${set("v1", plusOne(get("v1")))} ${set("v2", plusOne(get("v2")))} ${set("v3", plusOne(get("v3")))}
    ${set("high", `(i8x16.max_u (i8x16.max_u ${get("high")} (i8x16.max_u ${get("v0")} ${get("v1")})) (i8x16.max_u ${get("v2")} ${get("v3")}))`)}
    ${store(get("dst"), or(get("v0"), `(i8x16.shl ${get("v1")} (i32.const 2))`, `(i8x16.shl ${get("v2")} (i32.const 4))`, `(i8x16.shl ${get("v3")} (i32.const 6))`), start === 0 ? 0 : start === 16 ? 16 : start === 128 ? 32 : 48)}`;
      })
      .join("\n    ")}
    (i32.store16 offset=64 ${get("dst")} (select ${get("d")} (i32.const 0) (v128.any_true ${get("any")})))
    ${set("codes", add(get("codes"), i32(256)))}
    ${set("dst", add(get("dst"), i32(66)))}`,
  )}
  (v128.any_true ${highAbove2}))`;

/**
 * TQ1_0 (tq.ts): `blocks` blocks of 256 codes to 54 bytes. qs[m], m < 32: the digits (t + 1) of
 * elements m + 32n, n = 0..4, most significant first; qs[32 + m], m < 16: elements 160 + m + 16n;
 * qh[j], j < 4: elements 240 + j + 4n, n = 0..3, with a fifth digit 0; each byte is
 * ceil(v x 256 / 243) = floor((256 v + 242) / 243) of its base-3 number v, the division as a
 * multiply by 34522 and a shift by 23 (exact for every v in 0..242); then the f16 d as TQ2_0's.
 * Returns 1 when a code is not ternary.
 */
const TQ1_MAGIC = 34522;
const TQ1_SHIFT = 23;
/** floor((256 v + 242) / 243) of eight u16 v, as u16. */
const tritsToBytes16 = (v: string): string => {
  const x = `(i16x8.add (i16x8.shl ${v} (i32.const 8)) ${splat16(242)})`;
  const part = (half: "low" | "high") => `(i32x4.shr_u (i32x4.mul (i32x4.extend_${half}_i16x8_u ${x}) ${splat32(TQ1_MAGIC)}) (i32.const ${TQ1_SHIFT}))`;
  return `(i16x8.narrow_i32x4_u ${part("low")} ${part("high")})`;
};
/** The base-3 number of five digit vectors (u8, most significant first), for one half of the lanes. */
const base3 = (names: string[], half: "low" | "high"): string =>
  names.map((n) => `(i16x8.extend_${half}_i8x16_u ${get(n)})`).reduce((acc, d) => `(i16x8.add (i16x8.mul ${acc} ${splat16(3)}) ${d})`);
const packTq1_0 = `(func (export "pack_tq1_0") (param $codes i32) (param $blocks i32) (param $dst i32) (param $d i32) (result i32)
  ${locals("i32", "b", "j", "v")} ${locals("v128", "p0", "p1", "p2", "p3", "p4", "high", "any")}
  ${set("high", "(v128.const i64x2 0 0)")}
  ${forLoop(
    "b",
    i32(0),
    get("blocks"),
    1,
    `${set("any", "(v128.const i64x2 0 0)")}
    ${[
      [0, 32, 0],
      [16, 32, 16],
      [160, 16, 32],
    ]
      .map(([start, stride, at]) => {
        const names = ["p0", "p1", "p2", "p3", "p4"];
        return `${names.map((n, k) => set(n, load(get("codes"), start! + stride! * k))).join(" ")}
    ${set("any", or(get("any"), ...names.map(get)))}
    ${names.map((n) => set(n, plusOne(get(n)))).join(" ")}
    ${set("high", `(i8x16.max_u ${get("high")} (i8x16.max_u (i8x16.max_u (i8x16.max_u ${get("p0")} ${get("p1")}) (i8x16.max_u ${get("p2")} ${get("p3")})) ${get("p4")}))`)}
    ${store(get("dst"), `(i8x16.narrow_i16x8_u ${tritsToBytes16(base3(names, "low"))} ${tritsToBytes16(base3(names, "high"))})`, at)}`;
      })
      .join("\n    ")}
    ${set("p0", load(get("codes"), 240))}
    ${set("any", `(v128.or ${get("any")} ${get("p0")})`)}
    ${set("p0", plusOne(get("p0")))}
    ${set("high", `(i8x16.max_u ${get("high")} ${get("p0")})`)}
    ${forLoop(
      "j",
      i32(0),
      i32(4),
      1,
      `${set("v", "(i32.const 0)")}
      ${[0, 4, 8, 12].map((k) => set("v", `(i32.add (i32.mul ${get("v")} (i32.const 3)) (i32.add (i32.load8_s offset=${240 + k} ${add(get("codes"), get("j"))}) (i32.const 1)))`)).join(" ")}
      (i32.store8 offset=48 ${add(get("dst"), get("j"))} (i32.shr_u (i32.mul (i32.add (i32.shl (i32.mul ${get("v")} (i32.const 3)) (i32.const 8)) (i32.const 242)) (i32.const ${TQ1_MAGIC})) (i32.const ${TQ1_SHIFT})))`,
    )}
    (i32.store16 offset=52 ${get("dst")} (select ${get("d")} (i32.const 0) (v128.any_true ${get("any")})))
    ${set("codes", add(get("codes"), i32(256)))}
    ${set("dst", add(get("dst"), i32(54)))}`,
  )}
  (v128.any_true ${highAbove2}))`;

/** Digit n (0 = most significant) of 16 TQ1_0 bytes as ggml decodes them, ((b x 3^n mod 256) x 3) >> 8, minus 1: the codes. */
const tq1Codes = (bytes: string, n: number): string => {
  const half = (h: "low" | "high") => `(i16x8.shr_u (i16x8.mul (v128.and (i16x8.mul (i16x8.extend_${h}_i8x16_u ${bytes}) ${splat16(3 ** n)}) ${splat16(0xff)}) ${splat16(3)}) (i32.const 8))`;
  return `(i8x16.sub (i8x16.narrow_i16x8_u ${half("low")} ${half("high")}) ${splat8(1)})`;
};

/**
 * Decodes `blocks` TQ1_0 blocks at `payload` with ggml's digit rule and compares them with `codes`.
 * A byte is invalid (TQ1_0's packer never writes it: unpackTq1_0's E_PACKED_CODE) unless it is
 * ceil(256 v / 243) of the v its digits make, and for qh its fifth digit is 0. Bit 0: an invalid
 * byte; bit 1: other codes; bit 2: some code is nonzero.
 */
const checkTq1_0 = `(func (export "check_tq1_0") (param $payload i32) (param $codes i32) (param $blocks i32) (result i32)
  ${locals("i32", "k", "j", "byte", "v", "n", "c", "bad", "differs")} ${locals("v128", "b", "c0", "c1", "c2", "c3", "c4", "p0", "p1", "p2", "p3", "p4", "invalid", "diff", "nonzero")}
  ${forLoop(
    "k",
    i32(0),
    get("blocks"),
    1,
    `${[
      [0, 32, 0],
      [16, 32, 16],
      [160, 16, 32],
    ]
      .map(([start, stride, at]) => {
        const codes = ["c0", "c1", "c2", "c3", "c4"];
        const digits = ["p0", "p1", "p2", "p3", "p4"];
        return `${set("b", load(get("payload"), at))}
    ${codes.map((n, k) => set(n, load(get("codes"), start! + stride! * k))).join(" ")}
    ${set("nonzero", or(get("nonzero"), ...codes.map(get)))}
    ${digits.map((n, k) => set(n, tq1Codes(get("b"), k))).join(" ")}
    ${set("diff", or(get("diff"), ...codes.map((c, k) => `(v128.xor ${get(c)} ${get(digits[k]!)})`)))}
    ${digits.map((n) => set(n, plusOne(get(n)))).join(" ")}
    ${set("invalid", `(v128.or ${get("invalid")} (v128.xor ${get("b")} (i8x16.narrow_i16x8_u ${tritsToBytes16(base3(digits, "low"))} ${tritsToBytes16(base3(digits, "high"))})))`)}`;
      })
      .join("\n    ")}
    ${forLoop(
      "j",
      i32(0),
      i32(4),
      1,
      `${set("byte", `(i32.load8_u offset=48 ${add(get("payload"), get("j"))})`)}
      ${set("v", "(i32.const 0)")}
      ${forLoop(
        "n",
        i32(0),
        i32(5),
        1,
        `${set("c", `(i32.shr_u (i32.mul (i32.and (i32.mul ${get("byte")} (select (i32.const 1) (select (i32.const 3) (select (i32.const 9) (select (i32.const 27) (i32.const 81) (i32.lt_u ${get("n")} (i32.const 4))) (i32.lt_u ${get("n")} (i32.const 3))) (i32.lt_u ${get("n")} (i32.const 2))) (i32.eqz ${get("n")}))) (i32.const 0xff)) (i32.const 3)) (i32.const 8))`)}
        ${set("v", `(i32.add (i32.mul ${get("v")} (i32.const 3)) ${get("c")})`)}
        (if (i32.lt_u ${get("n")} (i32.const 4))
          (then ${set("differs", `(i32.or ${get("differs")} (i32.ne (i32.sub ${get("c")} (i32.const 1)) (i32.load8_s offset=240 ${add(get("codes"), add(get("j"), `(i32.shl ${get("n")} (i32.const 2))`))})))`)})
          (else ${set("bad", `(i32.or ${get("bad")} (i32.ne ${get("c")} (i32.const 0)))`)}))`,
      )}
      ${set("bad", `(i32.or ${get("bad")} (i32.ne ${get("byte")} (i32.shr_u (i32.mul (i32.add (i32.shl ${get("v")} (i32.const 8)) (i32.const 242)) (i32.const ${TQ1_MAGIC})) (i32.const ${TQ1_SHIFT}))))`)}`,
    )}
    ${set("nonzero", `(v128.or ${get("nonzero")} ${load(get("codes"), 240)})`)}
    ${set("codes", add(get("codes"), i32(256)))}
    ${set("payload", add(get("payload"), i32(54)))}`,
  )}
  (i32.or (i32.or (i32.or (v128.any_true ${get("invalid")}) ${get("bad")}) (i32.shl (i32.or (v128.any_true ${get("diff")}) ${get("differs")}) (i32.const 1))) (i32.shl (v128.any_true ${get("nonzero")}) (i32.const 2))))`;

/** Decodes `blocks` TQ2_0 blocks at `payload` and compares them with `codes` (CHECK_RESULT); d is not a code. */
const checkTq2_0 = `(func (export "check_tq2_0") (param $payload i32) (param $codes i32) (param $blocks i32) (result i32)
  ${locals("i32", "k")} ${locals("v128", "b", "c", "three", "diff", "nonzero")}
  ${forLoop(
    "k",
    i32(0),
    get("blocks"),
    1,
    `${[0, 16, 32, 48]
      .map((at) => {
        const start = at < 32 ? at : at + 96; // byte 32j + m: elements 128j + m ..
        return `${set("b", load(get("payload"), at))}
    ${set("three", `(v128.or ${get("three")} (v128.and ${get("b")} (i8x16.shr_u ${get("b")} (i32.const 1))))`)}
    ${[0, 1, 2, 3]
      .map((n) => `${set("c", load(get("codes"), start + 32 * n))} ${set("nonzero", `(v128.or ${get("nonzero")} ${get("c")})`)} ${set("diff", `(v128.or ${get("diff")} (v128.xor ${field(get("b"), 2 * n)} ${get("c")}))`)}`)
      .join("\n    ")}`;
      })
      .join("\n    ")}
    ${set("codes", add(get("codes"), i32(256)))}
    ${set("payload", add(get("payload"), i32(66)))}`,
  )}
  ${CHECK_RESULT})`;

/**
 * Q2_0 (q2_0.ts): `blocks` blocks of 64 codes to 18 bytes: the f16 d (`d` for a block with a
 * nonzero code, else 0), then element j at bits 2 (j % 4) of byte 2 + j / 4, as t + 1. Each i32
 * lane holds four codes v0..v3 (bytes); x | x >> 6 | (x | x >> 6) >> 12 gathers them into its low
 * byte. Returns 1 when a code is not ternary.
 */
const packQ2_0 = `(func (export "pack_q2_0") (param $codes i32) (param $blocks i32) (param $dst i32) (param $d i32) (result i32)
  ${locals("i32", "b")} ${locals("v128", "v0", "v1", "v2", "v3", "high", "any")}
  ${set("high", "(v128.const i64x2 0 0)")}
  ${forLoop(
    "b",
    i32(0),
    get("blocks"),
    1,
    `${set("v0", load(get("codes")))} ${set("v1", load(get("codes"), 16))} ${set("v2", load(get("codes"), 32))} ${set("v3", load(get("codes"), 48))}
    ${set("any", or(get("v0"), get("v1"), get("v2"), get("v3")))}
    ${set("v0", plusOne(get("v0")))} ${set("v1", plusOne(get("v1")))} ${set("v2", plusOne(get("v2")))} ${set("v3", plusOne(get("v3")))}
    ${set("high", `(i8x16.max_u (i8x16.max_u ${get("high")} (i8x16.max_u ${get("v0")} ${get("v1")})) (i8x16.max_u ${get("v2")} ${get("v3")}))`)}
    (i32.store16 ${get("dst")} (select ${get("d")} (i32.const 0) (v128.any_true ${get("any")})))
    ${store(get("dst"), `(i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_u ${gatherQuad("v0")} ${gatherQuad("v1")}) (i16x8.narrow_i32x4_u ${gatherQuad("v2")} ${gatherQuad("v3")}))`, 2)}
    ${set("codes", add(get("codes"), i32(64)))}
    ${set("dst", add(get("dst"), i32(18)))}`,
  )}
  (v128.any_true ${highAbove2}))`;

function gatherQuad(name: string): string {
  const x = `(v128.or ${get(name)} (i32x4.shr_u ${get(name)} (i32.const 6)))`;
  return `(v128.and (v128.or ${x} (i32x4.shr_u ${x} (i32.const 12))) ${splat32(0xff)})`;
}

/**
 * Decodes `blocks` Q2_0 blocks at `payload` and compares them with `codes` (CHECK_RESULT): field k
 * of byte m is element 4m + k, so the four fields' vectors are interleaved back into element order.
 */
const checkQ2_0 = `(func (export "check_q2_0") (param $payload i32) (param $codes i32) (param $blocks i32) (result i32)
  ${locals("i32", "k")} ${locals("v128", "b", "f0", "f1", "f2", "f3", "low01", "low23", "high01", "high23", "three", "diff", "nonzero")}
  ${forLoop(
    "k",
    i32(0),
    get("blocks"),
    1,
    `${set("b", load(get("payload"), 2))}
    ${set("three", `(v128.or ${get("three")} (v128.and ${get("b")} (i8x16.shr_u ${get("b")} (i32.const 1))))`)}
    ${set("f0", field(get("b"), 0))} ${set("f1", field(get("b"), 2))} ${set("f2", field(get("b"), 4))} ${set("f3", field(get("b"), 6))}
    ${set("low01", `(i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 ${get("f0")} ${get("f1")})`)}
    ${set("low23", `(i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 ${get("f2")} ${get("f3")})`)}
    ${set("high01", `(i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 ${get("f0")} ${get("f1")})`)}
    ${set("high23", `(i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 ${get("f2")} ${get("f3")})`)}
    ${[
      ["low", "0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23", 0],
      ["low", "8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31", 16],
      ["high", "0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23", 32],
      ["high", "8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31", 48],
    ]
      .map(([half, lanes, at]) => {
        const c = load(get("codes"), at as number);
        return `${set("nonzero", `(v128.or ${get("nonzero")} ${c})`)} ${set("diff", `(v128.or ${get("diff")} (v128.xor (i8x16.shuffle ${lanes} ${get(`${half}01`)} ${get(`${half}23`)}) ${c}))`)}`;
      })
      .join("\n    ")}
    ${set("codes", add(get("codes"), i32(64)))}
    ${set("payload", add(get("payload"), i32(18)))}`,
  )}
  ${CHECK_RESULT})`;

/** 16 byte lanes from a table (lane i = table(i)). */
const bytes16 = (table: (lane: number) => number): string => `(v128.const i8x16 ${Array.from({ length: 16 }, (_, i) => table(i) & 0xff).join(" ")})`;
const shuffle = (lanes: readonly number[], a: string, b: string): string => `(i8x16.shuffle ${lanes.join(" ")} ${a} ${b})`;
const ZERO = "(v128.const i64x2 0 0)";
/** Bit 0: an index outside the alphabet (lanes of `bad`); bit 1: it decodes to other codes; bit 2: some code is nonzero. */
const CHECK_FLAGS = `(i32.or (i32.or (v128.any_true ${get("bad")}) (i32.shl (v128.any_true ${get("diff")}) (i32.const 1))) (i32.shl (v128.any_true ${get("nonzero")}) (i32.const 2)))`;

/**
 * TL1 and TL2's tail (tl1.ts, tl2.ts): a byte is the pair indices 3a + b + 4 of four codes of one
 * row (at a column multiple of 4), and 16 consecutive payload bytes are 16 rows at one column. So
 * 16 bytes are made from, and checked against, the words of 16 rows: lane loads gather them, four
 * rows to a vector (q0..q3), from `p` + row x K, `rows` listing the 16 rows in payload order.
 */
function gatherRowWords(rows: readonly number[]): string {
  let at = 0;
  const steps = [set("r", get("p"))];
  rows.forEach((row, i) => {
    if (row !== at) steps.push(set("r", add(get("r"), row - at === 1 ? get("K") : `(i32.mul ${get("K")} ${i32(row - at)})`)));
    at = row;
    const q = `q${i >> 2}`;
    steps.push(set(q, `(v128.load32_lane ${i & 3} ${get("r")} ${i & 3 ? get(q) : ZERO})`));
  });
  return steps.join(" ");
}
const QUADS = ["q0", "q1", "q2", "q3"];

/** (x << 4 | x >> 8) & 0xff of u16 lanes x = hi | lo << 8: the byte hi << 4 | lo (both under 16). */
const nibblePairs = (x: string): string => `(v128.and (v128.or (i16x8.shl ${get(x)} (i32.const 4)) (i16x8.shr_u ${get(x)} (i32.const 8))) ${splat16(0xff)})`;

/**
 * Packs the 16 rows' words to 16 pair bytes at `o` + `offset`. With v = t + 1, the u16 lane
 * v0 | v1 << 8 times 0x0301 has 3 v0 + v1 in its high byte; the high bytes of two vectors (8 rows)
 * make u16 lanes P01 | P23 << 8 (P = 3 v0 + v1 = 3a + b + 4), then the byte P01 << 4 | P23.
 */
function packPairs(rows: readonly number[], offset: number): string {
  const indices = (x: string, y: string) => shuffle([1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31], `(i16x8.mul ${get(x)} ${splat16(0x0301)})`, `(i16x8.mul ${get(y)} ${splat16(0x0301)})`);
  return `${gatherRowWords(rows)}
    ${QUADS.map((q) => `${set(q, plusOne(get(q)))} ${set("high", `(i8x16.max_u ${get("high")} ${get(q)})`)}`).join(" ")}
    ${set("pairs01", indices("q0", "q1"))} ${set("pairs23", indices("q2", "q3"))}
    ${store(get("o"), `(i8x16.narrow_i16x8_u ${nibblePairs("pairs01")} ${nibblePairs("pairs23")})`, offset)}`;
}
const PAIR_PACK_LOCALS = locals("v128", "q0", "q1", "q2", "q3", "pairs01", "pairs23", "high");

/** First and second code of pair index 0..8 (9..15, outside the alphabet, give 0 and are flagged). */
const PAIR_FIRST = bytes16((i) => (i <= 8 ? Math.floor(i / 3) - 1 : 0));
const PAIR_SECOND = bytes16((i) => (i <= 8 ? (i % 3) - 1 : 0));
/** Lanes 0..7 (or 8..15) of two vectors interleaved: a0 b0 a1 b1 .. */
const INTERLEAVE_LOW = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const INTERLEAVE_HIGH = INTERLEAVE_LOW.map((i) => i + 8);
/** u16 lanes 0..3 (or 4..7) of two vectors interleaved. */
const INTERLEAVE_LOW16 = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23];
const INTERLEAVE_HIGH16 = INTERLEAVE_LOW16.map((i) => i + 8);

/**
 * Decodes the 16 pair bytes at `o` + `offset` (a nibble over 8 is invalid) and compares them with
 * the 16 rows' words: each byte's four codes, looked up by nibble, are interleaved back into row
 * words (t0 t1 t2 t3 of a row in one u32 lane).
 */
function checkPairs(rows: readonly number[], offset: number): string {
  return `${set("bytes", load(get("o"), offset))}
    ${set("h", `(i8x16.shr_u ${get("bytes")} (i32.const 4))`)} ${set("l", `(v128.and ${get("bytes")} ${splat8(15)})`)}
    ${set("bad", `(v128.or ${get("bad")} (i8x16.gt_u (i8x16.max_u ${get("h")} ${get("l")}) ${splat8(8)}))`)}
    ${set("t0", `(i8x16.swizzle ${PAIR_FIRST} ${get("h")})`)} ${set("t1", `(i8x16.swizzle ${PAIR_SECOND} ${get("h")})`)}
    ${set("t2", `(i8x16.swizzle ${PAIR_FIRST} ${get("l")})`)} ${set("t3", `(i8x16.swizzle ${PAIR_SECOND} ${get("l")})`)}
    ${set("lo01", shuffle(INTERLEAVE_LOW, get("t0"), get("t1")))} ${set("hi01", shuffle(INTERLEAVE_HIGH, get("t0"), get("t1")))}
    ${set("lo23", shuffle(INTERLEAVE_LOW, get("t2"), get("t3")))} ${set("hi23", shuffle(INTERLEAVE_HIGH, get("t2"), get("t3")))}
    ${gatherRowWords(rows)}
    ${set("nonzero", or(get("nonzero"), ...QUADS.map(get)))}
    ${set(
      "diff",
      or(
        get("diff"),
        `(v128.xor ${shuffle(INTERLEAVE_LOW16, get("lo01"), get("lo23"))} ${get("q0")})`,
        `(v128.xor ${shuffle(INTERLEAVE_HIGH16, get("lo01"), get("lo23"))} ${get("q1")})`,
        `(v128.xor ${shuffle(INTERLEAVE_LOW16, get("hi01"), get("hi23"))} ${get("q2")})`,
        `(v128.xor ${shuffle(INTERLEAVE_HIGH16, get("hi01"), get("hi23"))} ${get("q3")})`,
      ),
    )}`;
}
const PAIR_CHECK_LOCALS = locals("v128", "q0", "q1", "q2", "q3", "bytes", "h", "l", "t0", "t1", "t2", "t3", "lo01", "hi01", "lo23", "hi23", "bad", "diff", "nonzero");

const ROWS_16 = Array.from({ length: 16 }, (_, i) => i);

/**
 * TL1's tile loops (tl1.ts; by = 256 / bm): `body` for each 16 rows (their codes from `p`) and 16
 * payload bytes at `o`, in payload order. m0, c0, m1, c1, m2, c2 are the first row or column of
 * tl1.ts's i0 .. i5. `rows` (whole BM-row tiles) and K must fit the tiling.
 */
const tl1Tiles = (body: string): string => `${set("by", `(i32.div_u (i32.const 256) ${get("bm")})`)}
  ${forLoop(
    "m0",
    i32(0),
    get("rows"),
    get("BM"),
    forLoop(
      "c0",
      i32(0),
      get("K"),
      get("BK"),
      forLoop(
        "m1",
        get("m0"),
        add(get("m0"), get("BM")),
        get("bm"),
        forLoop(
          "c1",
          get("c0"),
          add(get("c0"), get("BK")),
          get("by"),
          forLoop(
            "m2",
            get("m1"),
            add(get("m1"), get("bm")),
            16,
            forLoop(
              "c2",
              get("c1"),
              add(get("c1"), get("by")),
              4,
              `${set("p", add(get("codes"), add(`(i32.mul ${get("m2")} ${get("K")})`, get("c2"))))}
    ${body}
    ${set("o", add(get("o"), i32(16)))}`,
            ),
          ),
        ),
      ),
    ),
  )}`;
const TL1_LOOP_LOCALS = locals("i32", "m0", "c0", "m1", "c1", "m2", "c2", "by", "p", "r", "o");

/** TL1 (tl1.ts): the codes of `rows` rows (whole BM-row tiles) to rows x K / 4 bytes at `out`. Returns 1 when a code is not ternary. */
const packTl1 = `(func (export "pack_tl1") (param $codes i32) (param $rows i32) (param $K i32) (param $BM i32) (param $BK i32) (param $bm i32) (param $out i32) (result i32)
  ${TL1_LOOP_LOCALS} ${PAIR_PACK_LOCALS}
  ${set("o", get("out"))}
  ${tl1Tiles(packPairs(ROWS_16, 0))}
  (v128.any_true ${highAbove2}))`;

/** Decodes the TL1 bytes at `payload` of `rows` rows and compares them with `codes` (CHECK_FLAGS; a nibble over 8 is invalid). */
const checkTl1 = `(func (export "check_tl1") (param $payload i32) (param $codes i32) (param $rows i32) (param $K i32) (param $BM i32) (param $BK i32) (param $bm i32) (result i32)
  ${TL1_LOOP_LOCALS} ${PAIR_CHECK_LOCALS}
  ${set("o", get("payload"))}
  ${tl1Tiles(checkPairs(ROWS_16, 0))}
  ${CHECK_FLAGS})`;

/**
 * TL2's three-weight columns (tl2.ts), region A (|v| pairs) and S (sign words) at once: rows b and
 * b + 16 of each 32-row group go together, 24 codes (8 triplets) of each at a time, since one S
 * word holds those 16 signs. Each row's 4 A bytes go to its position q in successive 32-byte lines
 * of its column tile: the group swap puts row b at q = b or b + 8, and row b + 16 always 8 after
 * it. `body` sees the rows' codes at `atB` and `atC` (and in `lb`, `lc`, `x`), their A bytes at `a` + 32k (+ 8) and their S
 * word at `s`. `rows` (whole BM-row tiles) and K must fit the tiling.
 */
const tl2Triplets = (body: string): string => `${set("K3", `(i32.sub ${get("K")} (i32.rem_u ${get("K")} ${get("BK")}))`)}
  ${set("aTile", `(i32.div_u (i32.mul ${get("BM")} ${get("BK")}) (i32.const 6))`)}
  ${set("sTile", `(i32.div_u (i32.mul ${get("BM")} ${get("BK")}) (i32.const 24))`)}
  ${forLoop(
    "m0",
    i32(0),
    get("rows"),
    get("BM"),
    forLoop(
      "g",
      get("m0"),
      add(get("m0"), get("BM")),
      32,
      forLoop(
        "b",
        i32(0),
        i32(16),
        1,
        `${set("rb", add(get("codes"), `(i32.mul ${add(get("g"), get("b"))} ${get("K")})`))}
    ${set("rc", add(get("rb"), `(i32.shl ${get("K")} (i32.const 4))`))}
    ${set("aRow", add(add(get("regionA"), `(i32.mul ${get("m0")} (i32.div_u ${get("K3")} (i32.const 6)))`), add(`(i32.mul (i32.sub ${get("g")} ${get("m0")}) (i32.div_u ${get("BK")} (i32.const 6)))`, add(get("b"), `(i32.and ${get("b")} (i32.const 8))`))))}
    ${set("sRow", add(add(get("regionS"), `(i32.mul ${get("m0")} (i32.div_u ${get("K3")} (i32.const 24)))`), add(`(i32.mul (i32.sub ${get("g")} ${get("m0")}) (i32.div_u ${get("BK")} (i32.const 24)))`, `(i32.shl ${get("b")} (i32.const 1))`)))}
    ${forLoop(
      "c0",
      i32(0),
      get("K3"),
      get("BK"),
      `${set("a", get("aRow"))} ${set("s", get("sRow"))}
      ${forLoop(
        "c",
        get("c0"),
        add(get("c0"), get("BK")),
        24,
        `${set("atB", add(get("rb"), get("c")))} ${set("atC", add(get("rc"), get("c")))}
        ${set("lb", load(get("atB")))} ${set("lc", load(get("atC")))}
        ${set("x", `(v128.load64_lane offset=16 1 ${get("atC")} (v128.load64_zero offset=16 ${get("atB")}))`)}
        ${body}
        ${set("a", add(get("a"), i32(128)))} ${set("s", add(get("s"), i32(32)))}`,
      )}
      ${set("aRow", add(get("aRow"), get("aTile")))} ${set("sRow", add(get("sRow"), get("sTile")))}`,
    )}`,
      ),
    ),
  )}`;

/** TL2's tail (region B): TL1-style pair bytes, 32 rows (swapped as in A) per 4 columns, `o` walking the region. */
const tl2Tail = (unit: (rows: readonly number[], offset: number) => string): string => `${set("o", get("regionB"))}
  ${forLoop(
    "m0",
    i32(0),
    get("rows"),
    get("BM"),
    forLoop(
      "c0",
      get("K3"),
      get("K"),
      32,
      forLoop(
        "g",
        get("m0"),
        add(get("m0"), get("BM")),
        32,
        forLoop(
          "c",
          get("c0"),
          add(get("c0"), i32(32)),
          4,
          `${set("p", add(get("codes"), add(`(i32.mul ${get("g")} ${get("K")})`, get("c"))))}
    ${unit(TAIL_FIRST, 0)}
    ${unit(TAIL_SECOND, 16)}
    ${set("o", add(get("o"), i32(32)))}`,
        ),
      ),
    ),
  )}`;
/** A 32-row group in TL2's payload order (positions 8-15 are rows 16-23 and 16-23 rows 8-15), 16 rows at a time. */
const TAIL_FIRST = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const TAIL_SECOND = TAIL_FIRST.map((r) => r + 8);
const TL2_LOOP_LOCALS = `${locals("i32", "K3", "aTile", "sTile", "m0", "g", "b", "rb", "rc", "aRow", "sRow", "c0", "c", "a", "s", "atB", "atC", "p", "r", "o")} ${locals("v128", "lb", "lc", "x")}`;

/**
 * Digit d (0: a, 1: b, 2: c) of the 8 triplets of rows b (lanes 0..7) and b + 16 (lanes 8..15):
 * code 3t + d of a row is in `lb` / `lc` (codes 0..15) or `x` (codes 16..23 of b, then of b + 16).
 */
function tripletDigits(d: number): string {
  const code = (lane: number) => 3 * (lane & 7) + d;
  const fromRows = Array.from({ length: 16 }, (_, lane) => (code(lane) < 16 ? code(lane) + (lane & 8 ? 16 : 0) : 0));
  const withTail = Array.from({ length: 16 }, (_, lane) => (code(lane) < 16 ? lane : 16 + (lane & 8) + code(lane) - 16));
  return shuffle(withTail, shuffle(fromRows, get("lb"), get("lc")), get("x"));
}

/**
 * The other way: the codes of `lb`, `lc` or `x` (`which`) from digit vectors `da`, `db`, `dc`
 * (lanes as tripletDigits gives them).
 */
function tripletCodes(which: "lb" | "lc" | "x"): string {
  // lane i of the result is code n of row b + 16 (when `second`), from triplet t = n / 3, digit n % 3
  const source = (i: number) => {
    const [second, n] = which === "lb" ? [false, i] : which === "lc" ? [true, i] : [i >= 8, 16 + (i & 7)];
    return { lane: Math.floor(n / 3) + (second ? 8 : 0), digit: n % 3 };
  };
  const ab = Array.from({ length: 16 }, (_, i) => {
    const { lane, digit } = source(i);
    return digit === 0 ? lane : digit === 1 ? 16 + lane : 0;
  });
  const abc = Array.from({ length: 16 }, (_, i) => {
    const { lane, digit } = source(i);
    return digit === 2 ? 16 + lane : i;
  });
  return shuffle(abc, shuffle(ab, get("da"), get("db")), get("dc"));
}

/** Lanes of the signed triplets (row b's 0..7, row b + 16's 8..15) in the order that puts their sign bits at 15 - 2t and 14 - 2t of i8x16.bitmask. */
const SIGN_ORDER = [15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0];

/**
 * TL2 (tl2.ts): the codes of `rows` rows (whole BM-row tiles) to the range's three regions at
 * `regionA` (|v| of triplet pairs), `regionS` (sign words) and `regionB` (the tail). v = 9a + 3b + c in
 * int8 lanes; pairs of |v| become bytes as pair indices do in TL1; the signs, reordered, are one
 * bitmask. Returns 1 when a code is not ternary.
 */
const packTl2 = `(func (export "pack_tl2") (param $codes i32) (param $rows i32) (param $K i32) (param $BM i32) (param $BK i32) (param $regionA i32) (param $regionS i32) (param $regionB i32) (result i32)
  ${TL2_LOOP_LOCALS} ${PAIR_PACK_LOCALS} ${locals("v128", "da", "db", "v", "m")}
  ${tl2Triplets(`${set("high", `(i8x16.max_u (i8x16.max_u ${get("high")} ${plusOne(get("lb"))}) (i8x16.max_u ${plusOne(get("lc"))} ${plusOne(get("x"))}))`)}
        ${set("da", tripletDigits(0))} ${set("db", tripletDigits(1))}
        ${set("v", `(i8x16.add (i8x16.add (i8x16.add (i8x16.shl ${get("da")} (i32.const 3)) ${get("da")}) (i8x16.add (i8x16.shl ${get("db")} (i32.const 1)) ${get("db")})) ${tripletDigits(2)})`)}
        (i32.store16 ${get("s")} (i8x16.bitmask ${shuffle(SIGN_ORDER, get("v"), get("v"))}))
        ${set("m", `(i8x16.abs ${get("v")})`)}
        ${set("m", `(i8x16.narrow_i16x8_u ${nibblePairs("m")} ${nibblePairs("m")})`)}
        ${[0, 1, 2, 3].map((k) => `(v128.store8_lane offset=${32 * k} ${k} ${get("a")} ${get("m")}) (v128.store8_lane offset=${32 * k + 8} ${4 + k} ${get("a")} ${get("m")})`).join(" ")}`)}
  ${tl2Tail(packPairs)}
  (v128.any_true ${highAbove2}))`;

/** Digit d of the balanced-ternary triplet of magnitude 0..13 (v = 9a + 3b + c; 14, 15 are invalid and give 0). */
const MAGNITUDE_DIGIT = (d: number) =>
  bytes16((v) => {
    if (v > 13) return 0;
    const a = Math.round(v / 9);
    const b = Math.round((v - 9 * a) / 3);
    return [a, b, v - 9 * a - 3 * b][d]!;
  });
/** The byte of the S word (0 low, 1 high) and the bit in it of each triplet's sign (row b's 0..7: bit 15 - 2t, row b + 16's: 14 - 2t). */
const SIGN_BYTE = Array.from({ length: 16 }, (_, lane) => ((lane & 7) < 4 ? 1 : 0));
const SIGN_BIT = bytes16((lane) => 1 << ((lane < 8 ? 15 - 2 * lane : 14 - 2 * (lane - 8)) & 7));

/**
 * Decodes TL2's regions at `regionA`, `regionS`, `regionB` of `rows` rows and compares them with
 * `codes` (CHECK_FLAGS). Invalid, as unpackTl2 refuses them: a magnitude over 13, a sign bit on a
 * zero magnitude, a tail nibble over 8. A signed triplet's digits are its magnitude's, negated.
 */
const checkTl2 = `(func (export "check_tl2") (param $regionA i32) (param $regionS i32) (param $regionB i32) (param $codes i32) (param $rows i32) (param $K i32) (param $BM i32) (param $BK i32) (result i32)
  ${TL2_LOOP_LOCALS} ${PAIR_CHECK_LOCALS} ${locals("v128", "m", "neg", "da", "db", "dc")}
  ${tl2Triplets(`${set("m", ZERO)}
        ${[0, 1, 2, 3].map((k) => `${set("m", `(v128.load8_lane offset=${32 * k} ${k} ${get("a")} ${get("m")})`)} ${set("m", `(v128.load8_lane offset=${32 * k + 8} ${4 + k} ${get("a")} ${get("m")})`)}`).join(" ")}
        ${set("m", shuffle(INTERLEAVE_LOW, `(i8x16.shr_u ${get("m")} (i32.const 4))`, `(v128.and ${get("m")} ${splat8(15)})`))}
        ${set("neg", `(i16x8.splat (i32.load16_u ${get("s")}))`)}
        ${set("neg", `(i8x16.eq (v128.and ${shuffle(SIGN_BYTE, get("neg"), get("neg"))} ${SIGN_BIT}) ${SIGN_BIT})`)}
        ${set("bad", or(get("bad"), `(i8x16.gt_u ${get("m")} ${splat8(13)})`, `(v128.and ${get("neg")} (i8x16.eq ${get("m")} ${ZERO}))`))}
        ${["da", "db", "dc"].map((d, i) => set(d, `(i8x16.sub (v128.xor (i8x16.swizzle ${MAGNITUDE_DIGIT(i)} ${get("m")}) ${get("neg")}) ${get("neg")})`)).join(" ")}
        ${set("nonzero", or(get("nonzero"), get("lb"), get("lc"), get("x")))}
        ${set("diff", or(get("diff"), `(v128.xor ${tripletCodes("lb")} ${get("lb")})`, `(v128.xor ${tripletCodes("lc")} ${get("lc")})`, `(v128.xor ${tripletCodes("x")} ${get("x")})`))}`)}
  ${tl2Tail(checkPairs)}
  ${CHECK_FLAGS})`;

/**
 * NaN/Inf count (payload-scan.ts, countNonFinite) of `n` 16-bit floats whose exponent field is
 * `mask` (0x7f80 bf16, 0x7c00 f16): a value is Inf or NaN when its exponent bits are all set.
 */
const nonFiniteHalves = `(func (export "nonfinite_halves") (param $src i32) (param $n i32) (param $mask i32) (result i32)
  ${locals("i32", "i", "end", "count")} ${locals("v128", "m", "acc")}
  ${set("m", `(i16x8.splat ${get("mask")})`)}
  ${set("acc", "(v128.const i64x2 0 0)")}
  ${set("end", `(i32.and ${get("n")} (i32.const -8))`)}
  ${forLoop("i", i32(0), get("end"), 8, set("acc", `(i32x4.sub ${get("acc")} (i32x4.extadd_pairwise_i16x8_s (i16x8.eq (v128.and ${load(add(get("src"), `(i32.shl ${get("i")} (i32.const 1))`))} ${get("m")}) ${get("m")})))`))}
  ${set("count", `(i32.add (i32.add (i32x4.extract_lane 0 ${get("acc")}) (i32x4.extract_lane 1 ${get("acc")})) (i32.add (i32x4.extract_lane 2 ${get("acc")}) (i32x4.extract_lane 3 ${get("acc")})))`)}
  ${forLoop("i", get("end"), get("n"), 1, set("count", `(i32.add ${get("count")} (i32.eq (i32.and (i32.load16_u ${add(get("src"), `(i32.shl ${get("i")} (i32.const 1))`)}) ${get("mask")}) ${get("mask")}))`))}
  ${get("count")})`;

/** The same for `n` f32 values. */
const nonFiniteF32 = `(func (export "nonfinite_f32") (param $src i32) (param $n i32) (result i32)
  ${locals("i32", "i", "end", "count")} ${locals("v128", "acc")}
  ${set("acc", "(v128.const i64x2 0 0)")}
  ${set("end", `(i32.and ${get("n")} (i32.const -4))`)}
  ${forLoop("i", i32(0), get("end"), 4, set("acc", `(i32x4.sub ${get("acc")} (i32x4.eq (v128.and ${load(add(get("src"), `(i32.shl ${get("i")} (i32.const 2))`))} ${splat32(0x7f800000)}) ${splat32(0x7f800000)}))`))}
  ${set("count", `(i32.add (i32.add (i32x4.extract_lane 0 ${get("acc")}) (i32x4.extract_lane 1 ${get("acc")})) (i32.add (i32x4.extract_lane 2 ${get("acc")}) (i32x4.extract_lane 3 ${get("acc")})))`)}
  ${forLoop("i", get("end"), get("n"), 1, set("count", `(i32.add ${get("count")} (i32.eq (i32.and (i32.load ${add(get("src"), `(i32.shl ${get("i")} (i32.const 2))`)}) (i32.const 0x7f800000)) (i32.const 0x7f800000)))`))}
  ${get("count")})`;

/**
 * One row of transformers' packing (hf-packed.ts): `n` bytes at `src`, field `shift` of each, as
 * the codes t = field - 1 at `dst`. Returns 1 when a field is 3 (never written by the packer).
 */
const unpackHfRow = `(func (export "unpack_hf_row") (param $src i32) (param $n i32) (param $shift i32) (param $dst i32) (result i32)
  ${locals("i32", "i", "end", "f", "bad")} ${locals("v128", "v", "three")}
  ${set("three", "(v128.const i64x2 0 0)")}
  ${set("end", `(i32.and ${get("n")} (i32.const -16))`)}
  ${forLoop(
    "i",
    i32(0),
    get("end"),
    16,
    `${set("v", `(v128.and (i8x16.shr_u ${load(add(get("src"), get("i")))} ${get("shift")}) ${splat8(3)})`)}
    ${set("three", `(v128.or ${get("three")} (v128.and ${get("v")} (i8x16.shr_u ${get("v")} (i32.const 1))))`)}
    ${store(add(get("dst"), get("i")), `(i8x16.sub ${get("v")} ${splat8(1)})`)}`,
  )}
  ${set("bad", `(v128.any_true ${get("three")})`)}
  ${forLoop(
    "i",
    get("end"),
    get("n"),
    1,
    `${set("f", `(i32.and (i32.shr_u (i32.load8_u ${add(get("src"), get("i"))}) ${get("shift")}) (i32.const 3))`)}
    ${set("bad", `(i32.or ${get("bad")} (i32.eq ${get("f")} (i32.const 3)))`)}
    (i32.store8 ${add(get("dst"), get("i"))} (i32.sub ${get("f")} (i32.const 1)))`,
  )}
  ${get("bad")})`;

/**
 * XXH64's stripe loop (xxh64.ts, xxh64Stripes): `stripes` runs of 32 bytes at `src` into the four
 * accumulators at `state` (four little-endian u64), four independent multiply chains.
 */
const xxhRound = (lane: number) =>
  set(`v${lane}`, `(i64.mul (i64.rotl (i64.add ${get(`v${lane}`)} (i64.mul (i64.load offset=${8 * (lane - 1)} align=1 ${get("src")}) (i64.const 0xc2b2ae3d27d4eb4f))) (i64.const 31)) (i64.const 0x9e3779b185ebca87))`);
const xxh64Stripes = `(func (export "xxh64_stripes") (param $state i32) (param $src i32) (param $stripes i32)
  ${locals("i32", "end")} ${locals("i64", "v1", "v2", "v3", "v4")}
  ${set("v1", `(i64.load ${get("state")})`)} ${set("v2", `(i64.load offset=8 ${get("state")})`)}
  ${set("v3", `(i64.load offset=16 ${get("state")})`)} ${set("v4", `(i64.load offset=24 ${get("state")})`)}
  ${set("end", add(get("src"), `(i32.shl ${get("stripes")} (i32.const 5))`))}
  (block $done (loop $next
    (br_if $done (i32.ge_u ${get("src")} ${get("end")}))
    ${xxhRound(1)} ${xxhRound(2)} ${xxhRound(3)} ${xxhRound(4)}
    ${set("src", add(get("src"), i32(32)))}
    (br $next)))
  (i64.store ${get("state")} ${get("v1")}) (i64.store offset=8 ${get("state")} ${get("v2")})
  (i64.store offset=16 ${get("state")} ${get("v3")}) (i64.store offset=24 ${get("state")} ${get("v4")}))`;

/** The conversion module: its own memory (each thread instantiates it), grown by the caller. */
export function generateConvertModule(): string {
  return `(module
(memory (export "memory") 1 65536)
${[absmeanHalves("bf16"), absmeanHalves("f16"), thresholdCodes, codeF32, packI2s(128), packI2s(64), checkI2s(128), checkI2s(64), packTq2_0, checkTq2_0, packTq1_0, checkTq1_0, packQ2_0, checkQ2_0, packTl1, checkTl1, packTl2, checkTl2, nonFiniteHalves, nonFiniteF32, unpackHfRow, xxh64Stripes].join("\n")}
)`;
}
