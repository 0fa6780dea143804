/**
 * GGUF v3 constants (docs/gguf.md in ggml; our notes in docs/gguf.md): value types, ggml tensor
 * types with their block geometry, and llama.cpp file types. Ids 36-43 and the file types 36-43
 * mean different things in mainline llama.cpp, bitnet.cpp's 2024 and 2026 forks and PrismML's
 * fork, so there is one named table per runtime (GGUF_TABLES); `ggmlTypeTable` picks one.
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
  /** A few words telling this meaning of the id from another table's (shown by inspect). */
  readonly note?: string;
}

/**
 * Ids 0-35 mean the same in every runtime below (bitnet.cpp's forks are llama.cpp forks that
 * branched after TQ2_0 was added). Checked against the ggml.h of the llama.cpp that
 * node-llama-cpp bundles (docs/gguf.md says how).
 */
const SHARED: readonly GgmlType[] = [
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
];

const MXFP4: GgmlType = { name: "MXFP4", id: 39, blockSize: 32, typeSize: 17 };
const NVFP4: GgmlType = { name: "NVFP4", id: 40, blockSize: 64, typeSize: 36 };
/** Binary, not ternary: d = mean|x| per 128 weights, one sign bit each. */
const Q1_0: GgmlType = { name: "Q1_0", id: 41, blockSize: 128, typeSize: 18, note: "binary 1-bit, g128" };
const I2_S: GgmlType = { name: "I2_S", id: 36, blockSize: 1, typeSize: 1, bitnet: "i2_s" };
const TL1: GgmlType = { name: "TL1", id: 38, blockSize: 1, typeSize: 1, bitnet: "tl1" };

/** Mainline llama.cpp (ggml-org): 36-38 are retired (IQ4_NL_4_4/4_8/8_8), 39-42 reassigned since 2025. */
const MAINLINE: readonly GgmlType[] = [...SHARED, MXFP4, NVFP4, Q1_0, { name: "Q2_0", id: 42, blockSize: 64, typeSize: 18, note: "ternary, g64, f16 d first" }];

/** Microsoft's bitnet.cpp fork, Oct 2024 to 2025 (the official 2B-4T GGUF): its own 36-39 (37 I8_S is activations only). */
const BITNET_CPP_2024: readonly GgmlType[] = [...SHARED, I2_S, TL1, { name: "TL2", id: 39, blockSize: 1, typeSize: 1, bitnet: "tl2" }];

/** The 2026 fork, rebased on modern llama.cpp: TL2 moved to 42 to make room for MXFP4/NVFP4/Q1_0. */
const BITNET_CPP_2026: readonly GgmlType[] = [...SHARED, I2_S, TL1, MXFP4, NVFP4, Q1_0, { name: "TL2", id: 42, blockSize: 1, typeSize: 1, bitnet: "tl2" }];

/** PrismML's llama.cpp fork (Ternary-Bonsai files): Q2_0 with 128-weight groups, and its own 142/143. */
const PRISMML: readonly GgmlType[] = [
  ...SHARED,
  MXFP4,
  NVFP4,
  Q1_0,
  { name: "Q2_0", id: 42, blockSize: 128, typeSize: 34, note: "PrismML's original, g128" },
  { name: "PQ2_0", id: 142, blockSize: 128, typeSize: 34, note: "PrismML, ternary g128" },
  { name: "PTQ1_0", id: 143, blockSize: 128, typeSize: 28, note: "PrismML, base-3 ternary g128" },
];

/**
 * The runtimes whose type-id tables disagree. A file's ids are read with one of them: the one its
 * `b158.target` key names, else the one whose meanings make every tensor's size and offset fit
 * (src/formats/gguf/read.ts). `general.file_type` never decides: it is only reported.
 */
export const GGUF_TABLE_IDS = ["llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026", "prismml"] as const;
export type GgufTableId = (typeof GGUF_TABLE_IDS)[number];
/** Which family of runtimes a table belongs to. */
export type GgufRuntime = "llama.cpp" | "bitnet.cpp" | "prismml";

export interface GgufTypeTable {
  readonly id: GgufTableId;
  /** For people: "bitnet.cpp 2026 fork". */
  readonly label: string;
  readonly runtime: GgufRuntime;
  readonly types: ReadonlyMap<number, GgmlType>;
  /** llama.h LLAMA_FTYPE_* values (general.file_type) by name, as far as b158 knows them. */
  readonly fileTypes: Readonly<Record<string, number>>;
  /** bitnet.cpp's gguf_init_from_file asserts n_dims >= 1; mainline reads a 0-dim tensor as one element. */
  readonly minDims: 0 | 1;
}

/** File types every table shares (llama.h). */
const SHARED_FILE_TYPES = { ALL_F32: 0, MOSTLY_F16: 1, MOSTLY_Q8_0: 7, MOSTLY_BF16: 32 } as const;
const MAINLINE_FILE_TYPES = { ...SHARED_FILE_TYPES, MOSTLY_TQ1_0: 36, MOSTLY_TQ2_0: 37, MOSTLY_MXFP4_MOE: 38, MOSTLY_NVFP4: 39, MOSTLY_Q1_0: 40, MOSTLY_Q2_0: 41 } as const;

const table = (id: GgufTableId, label: string, runtime: GgufRuntime, types: readonly GgmlType[], fileTypes: Record<string, number>, minDims: 0 | 1): GgufTypeTable => ({
  id,
  label,
  runtime,
  types: new Map(types.map((t) => [t.id, t])),
  fileTypes,
  minDims,
});

export const GGUF_TABLES: Readonly<Record<GgufTableId, GgufTypeTable>> = {
  "llama.cpp": table("llama.cpp", "mainline llama.cpp", "llama.cpp", MAINLINE, MAINLINE_FILE_TYPES, 0),
  "bitnet.cpp-2024": table("bitnet.cpp-2024", "bitnet.cpp 2024-2025 fork", "bitnet.cpp", BITNET_CPP_2024, { ...SHARED_FILE_TYPES, MOSTLY_TL1: 38, MOSTLY_TL2: 39, MOSTLY_I2_S: 40 }, 1),
  "bitnet.cpp-2026": table("bitnet.cpp-2026", "bitnet.cpp 2026 fork", "bitnet.cpp", BITNET_CPP_2026, { ...SHARED_FILE_TYPES, MOSTLY_Q1_0: 40, MOSTLY_I2_S: 41, MOSTLY_TL1: 42, MOSTLY_TL2: 43 }, 1),
  prismml: table("prismml", "PrismML llama.cpp fork", "prismml", PRISMML, MAINLINE_FILE_TYPES, 0),
};

/** Meanings of ids that no table reads, shown by inspect when a file uses them. */
export const OTHER_TYPE_MEANINGS: Readonly<Record<number, readonly string[]>> = {
  31: ["mainline: Q4_0_4_4 (removed)"],
  32: ["mainline: Q4_0_4_8 (removed)"],
  33: ["mainline: Q4_0_8_8 (removed)"],
  36: ["mainline: IQ4_NL_4_4 (removed)"],
  37: ["mainline: IQ4_NL_4_8 (removed)", "bitnet.cpp: I8_S (activations only, never in files)"],
  38: ["mainline: IQ4_NL_8_8 (removed)"],
  42: ['nebuxcloud "q2b1" files (third party)'],
  143: ["Doses-AI mortar G8_0 (third party)"],
};

export function ggmlTypeTable(table: GgufTableId): ReadonlyMap<number, GgmlType> {
  return GGUF_TABLES[table].types;
}

export function ggmlType(table: GgufTableId, name: string): GgmlType {
  for (const t of GGUF_TABLES[table].types.values()) if (t.name === name) return t;
  throw new Error(`no ggml type ${name} in ${table}'s table`);
}

/** Architectures only bitnet.cpp (Microsoft's fork) knows. */
export const BITNET_CPP_ARCHITECTURES: readonly string[] = ["bitnet-b1.58", "bitnet-25"];

/** bitnet.cpp's ggml_nbytes adds this much after the codes of I2_S, TL1 and TL2: the f32 tensor scale and 28 zero bytes. */
export const BITNET_SCALE_SLOT_BYTES = 32;

/**
 * Where the f32 tensor scale sits in an I2_S/TL1/TL2 tensor's data (what the kernels read), and
 * how many bytes of codes come before it. I2_S and TL1: right after the n/4 code bytes; TL2: after
 * its P code bytes rounded up to 32 with zeros (bitnet.cpp's ggml_nbytes, docs/gguf.md).
 */
export function bitnetScaleSlot(type: GgmlType, ne: readonly number[]): { readonly codeBytes: number; readonly scaleOffset: number } {
  const elements = ne.reduce((a, b) => a * b, 1);
  if (type.bitnet === "tl2") {
    const codeBytes = tl2PayloadBytes(ne[1] ?? 1, ne[0]!);
    return { codeBytes, scaleOffset: alignTo(codeBytes, 32) };
  }
  return { codeBytes: elements / 4, scaleOffset: elements / 4 };
}

/**
 * Why a bitnet.cpp type cannot be this tensor's meaning, or undefined: the shapes its kernels
 * accept (docs/layouts.md): I2_S 2-D with K a multiple of 64; TL1/TL2 2-D with M a multiple of 32,
 * TL1 K a multiple of 4, TL2 K >= 256 (its size formula assumes it).
 */
export function bitnetShapeProblem(type: GgmlType, ne: readonly number[]): string | undefined {
  if (type.bitnet === undefined) return undefined;
  if (ne.length !== 2) return `${type.name} tensors are 2-D matrices, this one has ${ne.length} dims`;
  const [K, M] = ne as [number, number];
  if (type.bitnet === "i2_s") return K % 64 === 0 ? undefined : `${type.name} rows are a multiple of 64 weights, not ${K}`;
  if (M % 32 !== 0) return `${type.name} kernels tile rows by 32; M = ${M}`;
  if (type.bitnet === "tl1") return K % 4 === 0 ? undefined : `TL1 rows are a multiple of 4 weights, not ${K}`;
  return K >= 256 ? undefined : `TL2 rows have at least 256 weights, not ${K}`;
}

/**
 * Bytes a tensor occupies in the data section (before alignment padding): blocks x block bytes,
 * or bitnet.cpp's ggml_nbytes for its types, which counts the 32-byte scale slot after the codes:
 * I2_S and TL1 n/4 + 32, TL2 roundup(P, 32) + 32.
 */
export function storedBytes(type: GgmlType, ne: readonly number[]): number {
  if (type.bitnet !== undefined) return bitnetScaleSlot(type, ne).scaleOffset + BITNET_SCALE_SLOT_BYTES;
  const elements = ne.reduce((a, b) => a * b, 1);
  return (elements / type.blockSize) * type.typeSize;
}

export function alignTo(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
