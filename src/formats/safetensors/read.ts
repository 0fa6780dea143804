import { B158Error, type ErrorCode } from "../../errors.js";
import type { ByteSource } from "../../io/byte-source.js";
import { isJsonObject, parseStrictJson, StrictJsonError, type JsonValue } from "../strict-json.js";
import { DTYPE_BYTES, isDtype, type Dtype } from "./dtypes.js";

/**
 * A strict safetensors reader (format: huggingface/safetensors README "Format").
 * It validates the whole header before trusting any of it, and reads tensor bytes by position
 * in bounded chunks, so memory never grows with file size.
 */

/** The reference implementation's cap; a larger header is an attack, not a model (CWE-770). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Far above any real checkpoint (a 405B model has ~2,000 tensors per shard); bounds per-entry work. */
export const MAX_TENSORS = 1_000_000;
/** No real tensor has more than a handful of dims; bounds the shape loop. */
export const MAX_DIMS = 32;
/** Chunk size for streaming reads: large enough for disk speed, small enough to stay cache-friendly. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

const PREFIX_BYTES = 8;

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Number of elements (product of shape; 1 for a 0-d tensor). */
  readonly elements: number;
  readonly byteLength: number;
  /** Absolute position of the first byte in the file. */
  readonly fileOffset: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  readonly headerLength: number;
  /** Absolute position of the data section. */
  readonly dataStart: number;
  /** Tensors in data order (ascending offset). */
  readonly tensors: readonly SafetensorsTensor[];
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

function fail(code: ErrorCode, file: string, message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new B158Error(code, `${file}: ${message}`, {
    details: { file, ...details },
    hint: hint ?? "The file is malformed; re-download or re-export it.",
  });
}

/** Reads and validates the header of a safetensors file. */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  if (source.size < PREFIX_BYTES) {
    fail("E_SAFETENSORS_TRUNCATED", file, `file is ${source.size} bytes, shorter than the 8-byte header length`, { size: source.size });
  }
  const prefix = await source.read(0, PREFIX_BYTES);
  const declared = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES).getBigUint64(0, true);
  checkHeaderLength(file, declared, source.size);
  const headerLength = Number(declared);
  const headerBytes = await source.read(PREFIX_BYTES, headerLength);
  return parseSafetensorsHeader(headerBytes, source.size, file);
}

function checkHeaderLength(file: string, declared: bigint, fileSize: number): void {
  if (declared === 0n) fail("E_SAFETENSORS_HEADER_SIZE", file, "header length is 0", { headerLength: 0 });
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    fail("E_SAFETENSORS_HEADER_SIZE", file, `header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      headerLength: declared.toString(),
      limit: MAX_HEADER_BYTES,
    });
  }
  if (declared > BigInt(fileSize - PREFIX_BYTES)) {
    fail("E_SAFETENSORS_HEADER_SIZE", file, `header length ${declared} runs past the end of the ${fileSize}-byte file`, {
      headerLength: declared.toString(),
      size: fileSize,
    });
  }
}

/** Validates header bytes (without the 8-byte prefix) against a file of `fileSize` bytes. Pure. */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail("E_SAFETENSORS_HEADER_JSON", file, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail("E_SAFETENSORS_HEADER_JSON", file, "header does not start with '{'");
  let parsed: JsonValue;
  try {
    parsed = parseStrictJson(text);
  } catch (error) {
    if (error instanceof StrictJsonError && error.kind === "duplicate") {
      fail("E_SAFETENSORS_DUPLICATE", file, `header names "${error.key}" twice (duplicate keys make readers disagree)`, { name: error.key });
    }
    fail("E_SAFETENSORS_HEADER_JSON", file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (!isJsonObject(parsed)) fail("E_SAFETENSORS_HEADER_JSON", file, "header is not a JSON object");

  const dataStart = PREFIX_BYTES + headerLength;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const entries: { tensor: Omit<SafetensorsTensor, "fileOffset">; begin: number; end: number }[] = [];

  const keys = Object.keys(parsed);
  const tensorCount = keys.length - (Object.hasOwn(parsed, "__metadata__") ? 1 : 0);
  if (tensorCount > MAX_TENSORS) {
    fail("E_SAFETENSORS_TOO_MANY", file, `header declares ${tensorCount} tensors, over the ${MAX_TENSORS} limit`, { count: tensorCount });
  }
  for (const name of keys) {
    const value = parsed[name];
    if (name === "__metadata__") {
      metadata = checkMetadata(file, value);
      continue;
    }
    entries.push(checkEntry(file, name, value));
  }

  // Contiguity, as the reference requires: sorted by offset, each tensor starts where the previous
  // ended, the first at 0 and the last at the end of the file. No holes means no hidden payloads.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const entry of entries) {
    if (entry.begin !== expected) {
      const what = entry.begin > expected ? `leaves a gap of ${entry.begin - expected} bytes` : `overlaps the previous tensor by ${expected - entry.begin} bytes`;
      fail("E_SAFETENSORS_OFFSETS", file, `tensor "${entry.tensor.name}" data_offsets [${entry.begin}, ${entry.end}] ${what} (tensors must be contiguous from offset ${expected})`, {
        tensor: entry.tensor.name,
        begin: entry.begin,
        end: entry.end,
        expected,
      });
    }
    expected = entry.end;
  }
  if (expected > dataSize) {
    const last = entries[entries.length - 1]!;
    fail("E_SAFETENSORS_TRUNCATED", file, `tensor "${last.tensor.name}" ends at data offset ${expected} but the data section has only ${dataSize} bytes (the file is ${expected - dataSize} bytes short)`, {
      tensor: last.tensor.name,
      end: expected,
      dataSize,
    }, "The file is truncated: re-download it.");
  }
  if (expected < dataSize) {
    fail("E_SAFETENSORS_OFFSETS", file, `${dataSize - expected} bytes after the last tensor are not indexed by the header (the data section must be fully covered)`, {
      indexedBytes: expected,
      dataSize,
    });
  }

  const tensors = entries.map(({ tensor, begin }) => ({ ...tensor, fileOffset: dataStart + begin }));
  return { file, fileSize, headerLength, dataStart, tensors, metadata };
}

function checkMetadata(file: string, value: JsonValue | undefined): Record<string, string> {
  if (!isJsonObject(value)) fail("E_SAFETENSORS_METADATA", file, "__metadata__ is not an object");
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") {
      fail("E_SAFETENSORS_METADATA", file, `__metadata__ key "${key}" has a ${item === null ? "null" : Array.isArray(item) ? "array" : typeof item} value (only strings are allowed)`, { key });
    }
    out[key] = item;
  }
  return out;
}

const ENTRY_FIELDS = new Set(["dtype", "shape", "data_offsets"]);

function checkEntry(file: string, name: string, value: JsonValue | undefined) {
  if (!isJsonObject(value)) fail("E_SAFETENSORS_ENTRY", file, `tensor "${name}" entry is not an object`, { tensor: name });
  for (const field of ENTRY_FIELDS) {
    if (!Object.hasOwn(value, field)) fail("E_SAFETENSORS_ENTRY", file, `tensor "${name}" has no "${field}"`, { tensor: name, field });
  }
  for (const field of Object.keys(value)) {
    if (!ENTRY_FIELDS.has(field)) fail("E_SAFETENSORS_ENTRY", file, `tensor "${name}" has an unknown field "${field}"`, { tensor: name, field });
  }
  const { dtype, shape, data_offsets: offsets } = value as { dtype: JsonValue; shape: JsonValue; data_offsets: JsonValue };
  if (!isDtype(dtype)) {
    fail("E_SAFETENSORS_DTYPE", file, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`, { tensor: name, dtype }, `Known dtypes: ${Object.keys(DTYPE_BYTES).join(", ")}.`);
  }
  if (!Array.isArray(shape) || shape.length > MAX_DIMS) {
    fail("E_SAFETENSORS_SHAPE", file, `tensor "${name}" shape is not a list of at most ${MAX_DIMS} dims`, { tensor: name });
  }
  let elements = 1;
  for (const dim of shape) {
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
      fail("E_SAFETENSORS_SHAPE", file, `tensor "${name}" shape ${JSON.stringify(shape)} has a dim that is not a non-negative safe integer`, { tensor: name, shape });
    }
    elements *= dim;
    if (!Number.isSafeInteger(elements)) {
      fail("E_SAFETENSORS_OVERFLOW", file, `tensor "${name}" shape ${JSON.stringify(shape)} has more elements than can be addressed`, { tensor: name, shape });
    }
  }
  const byteLength = elements * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(byteLength)) {
    fail("E_SAFETENSORS_OVERFLOW", file, `tensor "${name}" byte size overflows (${elements} elements of ${dtype})`, { tensor: name, shape });
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    fail("E_SAFETENSORS_OFFSETS", file, `tensor "${name}" data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative safe integers`, { tensor: name });
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    fail("E_SAFETENSORS_OFFSETS", file, `tensor "${name}" data_offsets [${begin}, ${end}] end before they begin`, { tensor: name, begin, end });
  }
  if (end - begin !== byteLength) {
    fail("E_SAFETENSORS_BYTE_LENGTH", file, `tensor "${name}" spans ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${byteLength}`, {
      tensor: name,
      spanned: end - begin,
      expected: byteLength,
    });
  }
  const tensor = { name, dtype, shape: shape as number[], elements, byteLength };
  return { tensor, begin, end };
}

/**
 * Streams a tensor's bytes in chunks of at most `chunkBytes` (rounded down to whole elements).
 * Each chunk is a fresh buffer the caller may keep or transfer.
 */
export async function* readTensorChunks(source: ByteSource, tensor: SafetensorsTensor, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncGenerator<Uint8Array> {
  const elementBytes = DTYPE_BYTES[tensor.dtype];
  const step = Math.max(elementBytes, Math.floor(chunkBytes / elementBytes) * elementBytes);
  for (let done = 0; done < tensor.byteLength; done += step) {
    yield await source.read(tensor.fileOffset + done, Math.min(step, tensor.byteLength - done));
  }
}

/** Reads a whole tensor; for small tensors only (norms, scales). Refuses anything over `limit` bytes. */
export async function readTensorBytes(source: ByteSource, tensor: SafetensorsTensor, limit = 256 * 1024 * 1024): Promise<Uint8Array> {
  if (tensor.byteLength > limit) {
    throw new B158Error("E_INTERNAL", `${source.name}: tensor "${tensor.name}" (${tensor.byteLength} bytes) is too large to read at once`, {
      details: { tensor: tensor.name, bytes: tensor.byteLength, limit },
    });
  }
  return source.read(tensor.fileOffset, tensor.byteLength);
}
