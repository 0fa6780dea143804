/**
 * Tiny helpers for writing WebAssembly text in TypeScript template strings: the kernels are
 * unrolled by TypeScript loops at build time, so the emitted text has every shift amount and
 * load offset as a constant.
 */

export const get = (name: string): string => `(local.get $${name})`;
export const set = (name: string, value: string): string => `(local.set $${name} ${value})`;
export const i32 = (value: number): string => `(i32.const ${value | 0})`;
export const add = (a: string, b: string): string => `(i32.add ${a} ${b})`;
export const mul = (a: string, b: string): string => `(i32.mul ${a} ${b})`;
/** An i32 field of a record at `base`. */
export const field = (base: string, offset: number): string => `(i32.load offset=${offset} ${base})`;

/** `(local $a t) (local $b t) ...` */
export function locals(type: string, ...names: string[]): string {
  return names.map((n) => `(local $${n} ${type})`).join(" ");
}

/** `for (name = from; name < to; name += step) body`, checked before each pass. */
export function forLoop(name: string, from: string, to: string, step: string | number, body: string): string {
  const inc = typeof step === "number" ? i32(step) : step;
  return `${set(name, from)}
  (block $${name}_end (loop $${name}_next
    (br_if $${name}_end (i32.ge_u ${get(name)} ${to}))
    ${body}
    ${set(name, add(get(name), inc))}
    (br $${name}_next)))`;
}

/** The four i32 lanes of a v128 added. */
export function hsumI32(v: string): string {
  return `(i32.add (i32.add (i32x4.extract_lane 0 ${v}) (i32x4.extract_lane 1 ${v})) (i32.add (i32x4.extract_lane 2 ${v}) (i32x4.extract_lane 3 ${v})))`;
}

/**
 * An f16 (low 16 bits of local `bits`) as an exact f64, Inf and NaN included: the f16 exponent and
 * mantissa moved into an f32 (a value 2^-112 times too small, subnormals included), then scaled.
 */
export function f16ToF64(bits: string): string {
  const h = get(bits);
  const magnitude = `(select
      (select (f64.const nan) (f64.const inf) (i32.and ${h} (i32.const 0x3ff)))
      (f64.mul (f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.and ${h} (i32.const 0x7fff)) (i32.const 13)))) (f64.const 0x1p112))
      (i32.eq (i32.and ${h} (i32.const 0x7c00)) (i32.const 0x7c00)))`;
  return `(f64.copysign ${magnitude} (f64.reinterpret_i64 (i64.shl (i64.extend_i32_u ${h}) (i64.const 48))))`;
}
