import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Hermetic builders for hostile safetensors files and checkpoint directories: the smallest bytes
 * that break one rule each. Nothing here validates, and nothing imports b158's own writer, so a
 * bug in the writer cannot hide a bug in the reader.
 */

/** Element sizes of the dtypes these tests use (unknown dtypes count 1 byte, so a file can still be laid out). */
const ELEMENT_BYTES: Readonly<Record<string, number>> = { BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8 };

export interface TensorSpec {
  readonly name: string;
  /** Default "U8". Anything goes: a hostile test may pass a number or an unknown dtype. */
  readonly dtype?: unknown;
  /** Default [4]. */
  readonly shape?: unknown;
  /**
   * data_offsets relative to the data section. Default: contiguous after the previous tensor,
   * spanning shape x dtype bytes (or `bytes` when given).
   */
  readonly offsets?: unknown;
  /** The span used for default offsets, overriding shape x dtype (to break the byte-length rule). */
  readonly bytes?: number;
  /** Raw fields merged into the entry last (`undefined` removes a field): extra or missing fields. */
  readonly fields?: Readonly<Record<string, unknown>>;
}

export interface BuildOptions {
  /** The raw header: an object (JSON-encoded), a string, or bytes. Wins over `tensors` and `metadata`. */
  readonly header?: object | string | Uint8Array;
  /** Overrides the 8-byte little-endian header length prefix (which is otherwise the true length). */
  readonly headerLength?: bigint;
  /** Tensors laid out into a header when `header` is not given. */
  readonly tensors?: readonly TensorSpec[];
  /** `__metadata__` of a header built from `tensors`. */
  readonly metadata?: unknown;
  /** The data section. Default: zeros up to the furthest numeric end offset of `tensors`. */
  readonly data?: Uint8Array;
  /** Bytes appended after the data section (unindexed bytes, a polyglot's payload). */
  readonly trailing?: number;
}

function elementCount(shape: unknown): number {
  return Array.isArray(shape) ? shape.reduce((n: number, d: unknown) => n * (typeof d === "number" ? d : 0), 1) : 0;
}

/** Lays tensors out contiguously; returns the header object and the data size it implies. */
export function layoutHeader(tensors: readonly TensorSpec[], metadata?: unknown): { header: Record<string, unknown>; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  let cursor = 0;
  let furthest = 0;
  for (const spec of tensors) {
    const dtype = spec.dtype ?? "U8";
    const shape = spec.shape ?? [4];
    const span = spec.bytes ?? elementCount(shape) * (typeof dtype === "string" ? (ELEMENT_BYTES[dtype] ?? 1) : 1);
    const offsets = spec.offsets ?? [cursor, cursor + span];
    const entry: Record<string, unknown> = { dtype, shape, data_offsets: offsets };
    for (const [key, value] of Object.entries(spec.fields ?? {})) {
      if (value === undefined) delete entry[key];
      else entry[key] = value;
    }
    header[spec.name] = entry;
    if (Array.isArray(offsets) && typeof offsets[1] === "number" && Number.isSafeInteger(offsets[1])) {
      cursor = offsets[1];
      furthest = Math.max(furthest, offsets[1]);
    }
  }
  return { header, dataBytes: furthest };
}

export function buildSafetensors(options: BuildOptions = {}): Uint8Array {
  let headerValue = options.header;
  let dataBytes = 0;
  if (headerValue === undefined) {
    const laid = layoutHeader(options.tensors ?? [], options.metadata);
    headerValue = laid.header;
    dataBytes = laid.dataBytes;
  }
  const headerBytes =
    headerValue instanceof Uint8Array ? headerValue : new TextEncoder().encode(typeof headerValue === "string" ? headerValue : JSON.stringify(headerValue));
  // A test asking for a header that claims 10^15 bytes gets no 10^15-byte buffer: data beyond 1 MiB must be given explicitly.
  const data = options.data ?? new Uint8Array(dataBytes <= 1 << 20 ? dataBytes : 0);
  const trailing = options.trailing ?? 0;
  const out = new Uint8Array(8 + headerBytes.byteLength + data.byteLength + trailing);
  new DataView(out.buffer).setBigUint64(0, options.headerLength ?? BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.byteLength);
  out.fill(0xab, 8 + headerBytes.byteLength + data.byteLength);
  return out;
}

/** A valid three-tensor file: w (F32 [2, 2], 16 bytes), b (U8 [4], 4 bytes), e (F16 [0], empty). */
export const VALID_TENSORS: readonly TensorSpec[] = [
  { name: "w", dtype: "F32", shape: [2, 2] },
  { name: "b", dtype: "U8", shape: [4] },
  { name: "e", dtype: "F16", shape: [0] },
];
export const VALID_DATA_BYTES = 20;

export function validHeader(): Record<string, unknown> {
  return layoutHeader(VALID_TENSORS, { format: "pt" }).header;
}

export function validFile(): Uint8Array {
  return buildSafetensors({ tensors: VALID_TENSORS, metadata: { format: "pt" }, data: new Uint8Array(VALID_DATA_BYTES).fill(1) });
}

/** A file's content, or a symbolic link to `symlink` (which may dangle). */
export type TempFile = string | Uint8Array | { readonly symlink: string };

/** A temp directory holding the given files; call cleanup() when done. */
export async function tempCheckpoint(files: Readonly<Record<string, TempFile>>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "b158-bad-"));
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === "object" && !(content instanceof Uint8Array)) await symlink(content.symlink, join(dir, name));
    else await writeFile(join(dir, name), content);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface CheckpointSpec {
  /** config.json: an object (JSON-encoded), raw text or bytes; omitted means no config.json. */
  readonly config?: object | string | Uint8Array;
  /** Weights files by name: tensor specs (laid out as a valid file) or raw bytes. */
  readonly shards: Readonly<Record<string, readonly TensorSpec[] | Uint8Array>>;
  /**
   * model.safetensors.index.json: "auto" derives it from `shards`, an object is the weight_map,
   * a string is the raw file. Omitted means no index.
   */
  readonly index?: "auto" | Readonly<Record<string, string>> | string;
  /** Any other files. */
  readonly extra?: Readonly<Record<string, TempFile>>;
}

/** The files of a checkpoint directory, for tempCheckpoint. */
export function checkpointFiles(spec: CheckpointSpec): Record<string, TempFile> {
  const files: Record<string, TempFile> = {};
  if (spec.config !== undefined) {
    files["config.json"] = typeof spec.config === "string" || spec.config instanceof Uint8Array ? spec.config : JSON.stringify(spec.config);
  }
  const weightMap: Record<string, string> = {};
  for (const [name, shard] of Object.entries(spec.shards)) {
    if (shard instanceof Uint8Array) {
      files[name] = shard;
      continue;
    }
    files[name] = buildSafetensors({ tensors: shard });
    for (const tensor of shard) weightMap[tensor.name] = name;
  }
  if (spec.index !== undefined) {
    files["model.safetensors.index.json"] =
      typeof spec.index === "string" && spec.index !== "auto" ? spec.index : JSON.stringify({ metadata: {}, weight_map: spec.index === "auto" ? weightMap : spec.index });
  }
  return { ...files, ...spec.extra };
}

/** Writes a checkpoint directory (config.json, shards, index) into a temp folder; call cleanup() when done. */
export function writeCheckpoint(spec: CheckpointSpec): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  return tempCheckpoint(checkpointFiles(spec));
}
