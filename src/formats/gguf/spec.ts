/**
 * GGUF v3 constants (docs/gguf.md in ggml; our notes in docs/gguf.md): value types, ggml tensor
 * types with their block geometry, and llama.cpp file types. bitnet.cpp's fork reuses ids that
 * mainline ggml retired or reassigned (36-40), so the type table depends on which runtime a file
 * targets; `ggmlTypeTable` picks it.
 */
import { tl2PayloadBytes } from "../../pack/layouts.js";

export const GGUF_MAGIC = Uint8Array.of(0x47, 0x47, 0x55, 0x46); // "GGUF"
export const GGUF_VERSION = 3;
/** Alignment when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_MAX_NAME includes the NUL, so names are at most 63 bytes. */
export const GGUF_MAX_NAME_BYTES = 63;
export const GGUF_MAX_DIMS = 4;

export const GGUF_VALUE_TYPES = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPES;
export type GgufScalarTypeName = Exclude<GgufValueTypeName, "array">;

export const GGUF_TYPE_NAMES: readonly GgufValueTypeName[] = Object.keys(GGUF_VALUE_TYPES) as GgufValueTypeName[];

/** Fixed byte sizes of scalar value types (strings are variable). */
export const GGUF_SCALAR_BYTES: Readonly<Record<Exclude<GgufScalarTypeName, "string">, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  bool: 1,
  uint64: 8,
  int64: 8,
  float64: 8,
};

export type GgufScalar = number | bigint | boolean | string;

/** One metadata value: a scalar of a declared type, or a flat array of one (GGUF forbids nesting in practice). */
export type GgufValue =
  | { readonly type: GgufScalarTypeName; readonly value: GgufScalar }
  | { readonly type: "array"; readonly itemType: GgufScalarTypeName; readonly value: readonly GgufScalar[] };

export interface GgufKv {
  readonly key: string;
  readonly value: GgufValue;
}

/** How a tensor type's bytes relate to its element count. */
export interface GgmlType {
  readonly name: string;
  readonly id: number;
  /** Elements per block; ne[0] must be a multiple. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** bitnet.cpp types whose stored length is not blocks x typeSize (see storedBytes). */
  readonly bitnet?: "i2_s" | "tl1" | "tl2";
}

const MAINLINE: readonly GgmlType[] = [
  { name: "F32", id: 0, blockSize: 1, typeSize: 4 },
  { name: "F16", id: 1, blockSize: 1, typeSize: 2 },
  { name: "Q4_0", id: 2, blockSize: 32, typeSize: 18 },
  { name: "Q4_1", id: 3, blockSize: 32, typeSize: 20 },
  { name: "Q5_0", id: 6, blockSize: 32, typeSize: 22 },
  { name: "Q5_1", id: 7, blockSize: 32, typeSize: 24 },
  { name: "Q8_0", id: 8, blockSize: 32, typeSize: 34 },
  { name: "Q8_1", id: 9, blockSize: 32, typeSize: 36 },
  { name: "Q2_K", id: 10, blockSize: 256, typeSize: 84 },
  { name: "Q3_K", id: 11, blockSize: 256, typeSize: 110 },
  { name: "Q4_K", id: 12, blockSize: 256, typeSize: 144 },
  { name: "Q5_K", id: 13, blockSize: 256, typeSize: 176 },
  { name: "Q6_K", id: 14, blockSize: 256, typeSize: 210 },
  { name: "Q8_K", id: 15, blockSize: 256, typeSize: 292 },
  { name: "IQ2_XXS", id: 16, blockSize: 256, typeSize: 66 },
  { name: "IQ2_XS", id: 17, blockSize: 256, typeSize: 74 },
  { name: "IQ3_XXS", id: 18, blockSize: 256, typeSize: 98 },
  { name: "IQ1_S", id: 19, blockSize: 256, typeSize: 50 },
  { name: "IQ4_NL", id: 20, blockSize: 32, typeSize: 18 },
  { name: "IQ3_S", id: 21, blockSize: 256, typeSize: 110 },
  { name: "IQ2_S", id: 22, blockSize: 256, typeSize: 82 },
  { name: "IQ4_XS", id: 23, blockSize: 256, typeSize: 136 },
  { name: "I8", id: 24, blockSize: 1, typeSize: 1 },
  { name: "I16", id: 25, blockSize: 1, typeSize: 2 },
  { name: "I32", id: 26, blockSize: 1, typeSize: 4 },
  { name: "I64", id: 27, blockSize: 1, typeSize: 8 },
  { name: "F64", id: 28, blockSize: 1, typeSize: 8 },
  { name: "IQ1_M", id: 29, blockSize: 256, typeSize: 56 },
  { name: "BF16", id: 30, blockSize: 1, typeSize: 2 },
  { name: "TQ1_0", id: 34, blockSize: 256, typeSize: 54 },
  { name: "TQ2_0", id: 35, blockSize: 256, typeSize: 66 },
  { name: "MXFP4", id: 39, blockSize: 32, typeSize: 17 },
  // mainline Q2_0 (ggml-common.h block_q2_0: f16 d, then 16 bytes of 2-bit codes); llama.cpp b9917 and later
  { name: "Q2_0", id: 42, blockSize: 64, typeSize: 18 },
];

/** Microsoft's bitnet.cpp fork: mainline's table up to 35, then its own 36-39 (37 is activations only). */
const BITNET_CPP: readonly GgmlType[] = [
  ...MAINLINE.filter((t) => t.id < 36),
  { name: "I2_S", id: 36, blockSize: 1, typeSize: 1, bitnet: "i2_s" },
  { name: "TL1", id: 38, blockSize: 1, typeSize: 1, bitnet: "tl1" },
  { name: "TL2", id: 39, blockSize: 1, typeSize: 1, bitnet: "tl2" },
];

export type GgufRuntime = "llama.cpp" | "bitnet.cpp";

const TABLES: Readonly<Record<GgufRuntime, ReadonlyMap<number, GgmlType>>> = {
  "llama.cpp": new Map(MAINLINE.map((t) => [t.id, t])),
  "bitnet.cpp": new Map(BITNET_CPP.map((t) => [t.id, t])),
};

export function ggmlTypeTable(runtime: GgufRuntime): ReadonlyMap<number, GgmlType> {
  return TABLES[runtime];
}

export function ggmlType(runtime: GgufRuntime, name: string): GgmlType {
  for (const t of TABLES[runtime].values()) if (t.name === name) return t;
  throw new Error(`no ggml type ${name} for ${runtime}`);
}

/** Architectures only bitnet.cpp (Microsoft's fork) knows; their files use the fork's type ids. */
export const BITNET_CPP_ARCHITECTURES: readonly string[] = ["bitnet-b1.58", "bitnet-25"];
/** llama.cpp file types of the fork (LLAMA_FTYPE_MOSTLY_TL1/TL2/I2_S). */
export const BITNET_CPP_FILE_TYPES: readonly number[] = [38, 39, 40];

/** general.file_type values b158 writes (llama.h LLAMA_FTYPE_*). */
export const FILE_TYPES = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q8_0: 7,
  MOSTLY_BF16: 32,
  MOSTLY_TQ1_0: 36,
  MOSTLY_TQ2_0: 37,
  MOSTLY_TL1: 38,
  MOSTLY_TL2: 39,
  MOSTLY_I2_S: 40,
  /** Mainline LLAMA_FTYPE_MOSTLY_Q2_0; the 2026 bitnet.cpp fork gives 41 to I2_S. */
  MOSTLY_Q2_0: 41,
} as const;

/**
 * Bytes a tensor occupies in the data section (before alignment padding). For I2_S that is the
 * codes plus the 32-byte scale tail; for TL1/TL2 only the codes: their f32 scale is the next
 * tensor, `<name>_scale`, which the kernels find by position.
 */
export function storedBytes(type: GgmlType, ne: readonly number[]): number {
  const elements = ne.reduce((a, b) => a * b, 1);
  switch (type.bitnet) {
    case "i2_s":
      return elements / 4 + 32;
    case "tl1":
      return elements / 4;
    case "tl2":
      return tl2PayloadBytes(ne[1] ?? 1, ne[0]!);
    default:
      return (elements / type.blockSize) * type.typeSize;
  }
}

export function alignTo(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
