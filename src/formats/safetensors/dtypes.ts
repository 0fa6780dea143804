/**
 * safetensors dtypes and their element sizes in bytes (safetensors/src/tensor.rs `Dtype`).
 * Sub-byte dtypes (F4, F6_*) are not accepted: no BitNet checkpoint uses them and their
 * byte-length rule differs.
 */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
  C64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;
export const DTYPES = Object.keys(DTYPE_BYTES) as Dtype[];

export function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && Object.hasOwn(DTYPE_BYTES, value);
}

/** Float dtypes b158 can read as numbers (for scans and ternarization). */
export const FLOAT_DTYPES = ["F64", "F32", "F16", "BF16"] as const satisfies readonly Dtype[];
export type FloatDtype = (typeof FLOAT_DTYPES)[number];
export function isFloatDtype(dtype: Dtype): dtype is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}
