import { createHash } from "node:crypto";
import { B158Error, type ErrorCode } from "../../errors.js";
import { openFileWith, readInto, type ByteSource } from "../../io/byte-source.js";
import { unpackLayout } from "../../pack/codec.js";
import { halfBitsToFloat32 } from "../../pack/float16.js";
import { Q2_0_BLOCK, Q2_0_BLOCK_BYTES, SCALE_BLOCK, tl1TilingProblem, tl2PayloadBytes, tl2TilingProblem, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, TQ_BLOCK, type LayoutParams } from "../../pack/layouts.js";
import { applyScale, groupScalesFromBlocks, type TensorScale } from "../../pack/scales.js";
import { describeSchemaErrors, getValidator } from "../../schemas.js";
import { decodeHeader, type B158Header, type B158TensorEntry } from "./header.js";
import { layoutParams } from "./params.js";
import { alignUp, DATA_ALIGNMENT, MAGIC, MAJOR, MAX_HEADER_BYTES, PAYLOAD_ALIGNMENT, PLAIN_LAYOUT_BYTES, PREAMBLE_BYTES, type PlainLayout } from "./spec.js";

/**
 * A strict .b158 reader (docs/FORMAT.md §2). open() checks the preamble, the header's sha256 and
 * schema, every payload's length against its layout and shape, and the offsets; payloads are read
 * lazily by position. Library API for JavaScript runtimes.
 */
export interface B158Tensor extends B158TensorEntry {
  /** Absolute position of the payload in the file. */
  readonly fileOffset: number;
  /** Parsed layout parameters for ternary layouts. */
  readonly layoutParams: LayoutParams | undefined;
}

export interface B158File {
  readonly name: string;
  readonly size: number;
  readonly version: { readonly major: number; readonly minor: number };
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly header: B158Header;
  readonly tensors: readonly B158Tensor[];
  tensor(name: string): B158Tensor;
  /** The payload bytes (one positioned read). */
  readPayload(name: string): Promise<Uint8Array>;
  /** Bytes [offset, offset + into.length) of the payload into `into` (a caller's own buffer or memory). */
  readPayloadInto(name: string, offset: number, into: Uint8Array): Promise<void>;
  /** The payload in chunks of at most `chunkBytes`, for payloads too large to hold at once. */
  readPayloadChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array>;
  /** Ternary codes [out * in] and the scale: one value, or per group (read from the payload's block d). */
  decodeTernary(name: string): Promise<{ codes: Int8Array; scale: TensorScale }>;
  /** The effective weights as float32: scale x code for ternary layouts (per group where it has groups), converted for plain ones. */
  decodeFloat32(name: string): Promise<Float32Array>;
  /** Re-hashes every payload and checks the alignment padding; returns the damaged tensors' names. */
  verify(): Promise<string[]>;
  close(): Promise<void>;
}

function fail(code: ErrorCode, file: string, message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new B158Error(code, `${file}: ${message}`, { details: { file, ...details }, hint: hint ?? "The file is damaged or was not written by a .b158 writer; convert again." });
}

export function openB158File(path: string): Promise<B158File> {
  return openFileWith(path, openB158);
}

export async function openB158(source: ByteSource): Promise<B158File> {
  const file = source.name;
  if (source.size < PREAMBLE_BYTES) {
    if (source.size >= MAGIC.length && !startsWithMagic(await source.read(0, MAGIC.length))) fail("E_B158_MAGIC", file, "does not start with the .b158 magic");
    fail("E_B158_TRUNCATED", file, `is ${source.size} bytes, shorter than the 64-byte preamble`);
  }
  const preamble = await source.read(0, PREAMBLE_BYTES);
  if (!startsWithMagic(preamble)) fail("E_B158_MAGIC", file, "does not start with the .b158 magic (89 42 31 35 38 0d 0a 1a)");
  const view = new DataView(preamble.buffer, preamble.byteOffset, PREAMBLE_BYTES);
  const major = view.getUint16(8, true);
  const minor = view.getUint16(10, true);
  const flags = view.getUint32(12, true);
  if (major !== MAJOR) fail("E_B158_VERSION", file, `is format ${major}.${minor}; this reader knows major ${MAJOR}`, { major, minor }, "Upgrade b158 to read this file.");
  if (flags !== 0) fail("E_B158_VERSION", file, `has reserved flags 0x${flags.toString(16)} set (must be 0 in format 1.x)`, { flags });
  const headerLength = view.getBigUint64(16, true);
  const dataOffsetBig = view.getBigUint64(24, true);
  if (headerLength === 0n || headerLength > BigInt(MAX_HEADER_BYTES)) fail("E_B158_HEADER", file, `header length ${headerLength} is outside 1 .. ${MAX_HEADER_BYTES}`);
  if (64n + headerLength > BigInt(source.size)) fail("E_B158_TRUNCATED", file, `header of ${headerLength} bytes runs past the ${source.size}-byte file`);
  if (dataOffsetBig % BigInt(DATA_ALIGNMENT) !== 0n || dataOffsetBig < 64n + headerLength) {
    fail("E_B158_OFFSETS", file, `data offset ${dataOffsetBig} is not a multiple of ${DATA_ALIGNMENT} at or after the header's end`);
  }
  if (dataOffsetBig > BigInt(source.size)) fail("E_B158_TRUNCATED", file, `data offset ${dataOffsetBig} is past the end of the ${source.size}-byte file`);
  const dataOffset = Number(dataOffsetBig);
  const headerBytes = await source.read(PREAMBLE_BYTES, Number(headerLength));
  const digest = createHash("sha256").update(headerBytes).digest();
  if (Buffer.compare(digest, preamble.subarray(32, 64)) !== 0) fail("E_B158_HEADER", file, "header does not match its sha256 in the preamble");
  const padding = await source.read(PREAMBLE_BYTES + headerBytes.byteLength, dataOffset - PREAMBLE_BYTES - headerBytes.byteLength);
  if (padding.some((b) => b !== 0)) fail("E_B158_HEADER", file, "padding between the header and the data section is not zero");

  let decoded: unknown;
  try {
    // the MessagePack subset of docs/FORMAT.md §1.2, nested at most 64 levels (every later step walks it)
    decoded = decodeHeader(headerBytes);
  } catch (error) {
    fail("E_B158_HEADER", file, `header is not the MessagePack a .b158 header is made of: ${(error as Error).message}`);
  }
  const header = checkHeader(file, decoded);
  const tensors = checkTensors(file, header, dataOffset, source.size);
  const byName = new Map(tensors.map((t) => [t.name, t]));

  const tensor = (name: string): B158Tensor => {
    const found = byName.get(name);
    if (found === undefined) throw new B158Error("E_TENSOR_MISSING", `${file}: has no tensor "${name}"`, { details: { file, tensor: name } });
    return found;
  };
  const readPayload = (name: string) => {
    const t = tensor(name);
    return source.read(t.fileOffset, t.length);
  };
  const decodeTernary = async (name: string): Promise<{ codes: Int8Array; scale: TensorScale }> => {
    const t = tensor(name);
    if (t.layoutParams === undefined) {
      throw new B158Error("E_USAGE", `${file}: tensor "${name}" is ${t.layout}, not ternary`, { details: { file, tensor: name } });
    }
    const unpacked = unpackLayout(t.layoutParams, await readPayload(name), t.shape as [number, number], undefined, { file, tensor: name });
    return { codes: unpacked.codes, scale: t.group_size === undefined ? t.scale! : groupScales(file, t, unpacked.codes, unpacked.blockScales!) };
  };
  return {
    name: file,
    size: source.size,
    version: { major, minor },
    headerLength: Number(headerLength),
    dataOffset,
    header,
    tensors,
    tensor,
    readPayload,
    async readPayloadInto(name, offset, into) {
      const t = tensor(name);
      if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + into.byteLength <= t.length)) {
        throw new B158Error("E_INTERNAL", `${file}: bytes ${offset}..${offset + into.byteLength} are outside tensor "${name}"'s ${t.length}-byte payload`);
      }
      await readInto(source, t.fileOffset + offset, into);
    },
    async *readPayloadChunks(name, chunkBytes = 8 * 1024 * 1024) {
      const t = tensor(name);
      const step = Math.max(8, Math.floor(chunkBytes / 8) * 8);
      for (let done = 0; done < t.length; done += step) yield await source.read(t.fileOffset + done, Math.min(step, t.length - done));
    },
    decodeTernary,
    async decodeFloat32(name) {
      const t = tensor(name);
      if (t.layoutParams !== undefined) {
        const { codes, scale } = await decodeTernary(name);
        return applyScale(codes, t.shape[1]!, scale);
      }
      return plainToFloat32(t.layout as PlainLayout, await readPayload(name));
    },
    async verify() {
      const damaged: string[] = [];
      const CHUNK = 8 * 1024 * 1024;
      for (let i = 0; i < tensors.length; i++) {
        const t = tensors[i]!;
        const hash = createHash("sha256");
        for (let done = 0; done < t.length; done += CHUNK) hash.update(await source.read(t.fileOffset + done, Math.min(CHUNK, t.length - done)));
        const next = i + 1 < tensors.length ? tensors[i + 1]!.fileOffset : t.fileOffset + t.length;
        const padding = await source.read(t.fileOffset + t.length, next - t.fileOffset - t.length);
        if (hash.digest("hex") !== t.sha256 || padding.some((b) => b !== 0)) damaged.push(t.name);
      }
      return damaged;
    },
    close: () => source.close(),
  };
}

/** A group-scaled tensor's scales, from its payload's block d (docs/FORMAT.md §1.7); blocks of a group that disagree are E_B158_LAYOUT. */
export function groupScales(file: string, t: B158TensorEntry & { readonly layoutParams: LayoutParams | undefined }, codes: Int8Array, blocks: Float32Array) {
  const [M, K] = t.shape as [number, number];
  const groups = groupScalesFromBlocks(blocks, codes, M, K, SCALE_BLOCK[t.layoutParams!.layout]!, t.group_size!);
  if ("conflict" in groups) {
    const { row, group, scales } = groups.conflict;
    fail("E_B158_LAYOUT", file, `tensor "${t.name}": blocks of group ${group} of row ${row} (group_size ${t.group_size}) have different scales ${scales[0]} and ${scales[1]}`, { tensor: t.name, row, group });
  }
  return groups;
}

function startsWithMagic(bytes: Uint8Array): boolean {
  return MAGIC.every((b, i) => bytes[i] === b);
}

function checkHeader(file: string, decoded: unknown): B158Header {
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) fail("E_B158_SCHEMA", file, "header is not a map");
  const raw = decoded as Record<string, unknown>;
  // Binary file contents are not JSON: check them here, and give the schema their lengths.
  const files = raw.files;
  let filesForSchema = files;
  if (files !== null && typeof files === "object" && !Array.isArray(files) && !(files instanceof Uint8Array)) {
    filesForSchema = Object.fromEntries(
      Object.entries(files).map(([name, value]) => {
        if (!(value instanceof Uint8Array)) fail("E_B158_SCHEMA", file, `files["${name}"] is not binary`);
        return [name, value.byteLength];
      }),
    );
  }
  const forSchema = { ...raw, files: filesForSchema };
  const binary = binaryPath(forSchema, "header");
  if (binary !== undefined) fail("E_B158_SCHEMA", file, `${binary} is binary; only the values of files are`);
  const validate = getValidator("b158-header");
  if (!validate(forSchema)) fail("E_B158_SCHEMA", file, `header breaks the schema: ${describeSchemaErrors(validate.errors)}`, { errors: validate.errors });
  return raw as unknown as B158Header;
}

/** Where a binary value is in a decoded header (its files' values already replaced), or undefined. The header nests at most 64 levels. */
function binaryPath(value: unknown, path: string): string | undefined {
  if (value instanceof Uint8Array) return path;
  if (value === null || typeof value !== "object") return undefined;
  const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value).map(([k, v]) => [`.${k}`, v] as const);
  for (const [step, child] of entries) {
    const found = binaryPath(child, path + step);
    if (found !== undefined) return found;
  }
  return undefined;
}

function expectedLength(entry: B158TensorEntry, params: LayoutParams | undefined): { length: number } | { problem: string } {
  const shape = entry.shape;
  if (params === undefined) {
    const elements = shape.reduce((a, b) => a * b, 1);
    const bytes = elements * PLAIN_LAYOUT_BYTES[entry.layout as PlainLayout];
    return Number.isSafeInteger(bytes) ? { length: bytes } : { problem: "shape overflows" };
  }
  const [M, K] = shape as [number, number];
  switch (params.layout) {
    case "i2_s":
      return K % params.blockSize === 0 ? { length: (M * K) / 4 + 32 } : { problem: `K = ${K} is not a multiple of block_size ${params.blockSize}` };
    case "tl1": {
      const problem = tl1TilingProblem(M, K, params);
      return problem === undefined ? { length: (M * K) / 4 } : { problem };
    }
    case "tl2": {
      const problem = tl2TilingProblem(M, K, params);
      return problem === undefined ? { length: tl2PayloadBytes(M, K) } : { problem };
    }
    case "tq1_0":
    case "tq2_0":
      return K % TQ_BLOCK === 0 ? { length: ((M * K) / TQ_BLOCK) * (params.layout === "tq1_0" ? TQ1_0_BLOCK_BYTES : TQ2_0_BLOCK_BYTES) } : { problem: `K = ${K} is not a multiple of 256` };
    case "q2_0":
      return K % Q2_0_BLOCK === 0 ? { length: ((M * K) / Q2_0_BLOCK) * Q2_0_BLOCK_BYTES } : { problem: `K = ${K} is not a multiple of 64` };
  }
}

/** docs/FORMAT.md §1.7: a group size is a multiple of the layout's block that divides K. */
function groupSizeProblem(entry: B158TensorEntry, params: LayoutParams): string | undefined {
  const G = entry.group_size!;
  const block = SCALE_BLOCK[params.layout];
  const K = entry.shape[1]!;
  if (block === undefined) return `${params.layout} holds one scale per tensor, not group_size ${G}`;
  if (G % block !== 0 || K % G !== 0) return `group_size ${G} is not a multiple of the ${block}-weight block that divides K = ${K}`;
  return undefined;
}

function checkTensors(file: string, header: B158Header, dataOffset: number, size: number): B158Tensor[] {
  // part of header validation (docs/FORMAT.md §1.2 step 4), so before any tensor's layout is checked
  const seen = new Set<string>();
  for (const entry of header.tensors) {
    if (seen.has(entry.name)) fail("E_B158_SCHEMA", file, `tensor "${entry.name}" appears twice`, { tensor: entry.name });
    seen.add(entry.name);
  }
  let expectedOffset = 0;
  let end = 0;
  const tensors = header.tensors.map((entry) => {
    const params = layoutParams(entry.layout, entry.params);
    const expected = expectedLength(entry, params);
    if ("problem" in expected) fail("E_B158_LAYOUT", file, `tensor "${entry.name}" ${entry.layout} ${JSON.stringify(entry.shape)}: ${expected.problem}`, { tensor: entry.name });
    if (params !== undefined && entry.group_size !== undefined) {
      const problem = groupSizeProblem(entry, params);
      if (problem !== undefined) fail("E_B158_LAYOUT", file, `tensor "${entry.name}" ${entry.layout} ${JSON.stringify(entry.shape)}: ${problem}`, { tensor: entry.name });
    }
    if (expected.length !== entry.length) {
      fail("E_B158_LAYOUT", file, `tensor "${entry.name}" ${entry.layout} ${JSON.stringify(entry.shape)} has a ${entry.length}-byte payload; the layout needs ${expected.length}`, { tensor: entry.name });
    }
    if (entry.offset !== expectedOffset) {
      fail("E_B158_OFFSETS", file, `tensor "${entry.name}" payload at ${entry.offset}; expected ${expectedOffset} (64-aligned, right after the previous payload)`, { tensor: entry.name });
    }
    end = entry.offset + entry.length;
    expectedOffset = alignUp(end, PAYLOAD_ALIGNMENT);
    if (params !== undefined && typeof entry.scale !== "number" && entry.group_size === undefined) {
      // a non-finite scale is reported by validation as degenerate, but it must at least be a number
      fail("E_B158_SCHEMA", file, `ternary tensor "${entry.name}" has no scale`, { tensor: entry.name });
    }
    return { ...entry, fileOffset: dataOffset + entry.offset, layoutParams: params };
  });
  if (dataOffset + end > size) fail("E_B158_TRUNCATED", file, `payloads end at byte ${dataOffset + end} but the file has ${size}`);
  if (dataOffset + end < size) fail("E_B158_OFFSETS", file, `${size - dataOffset - end} bytes trail the last payload`);
  return tensors;
}

/** A plain payload (or a whole-element slice of one) as float32. */
export function plainToFloat32(layout: PlainLayout, bytes: Uint8Array): Float32Array {
  const size = PLAIN_LAYOUT_BYTES[layout];
  const n = bytes.byteLength / size;
  // typed-array views need aligned offsets; a misaligned slice is copied once
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  if (layout === "f32") return new Float32Array(aligned.buffer, aligned.byteOffset, n).slice();
  if (layout === "f16" || layout === "bf16") return halfBitsToFloat32(new Uint16Array(aligned.buffer, aligned.byteOffset, n), layout);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * size;
    out[i] =
      layout === "f64" ? view.getFloat64(at, true)
      : layout === "i8" ? view.getInt8(at)
      : layout === "u8" || layout === "bool" ? view.getUint8(at)
      : layout === "i16" ? view.getInt16(at, true)
      : layout === "i32" ? view.getInt32(at, true)
      : Number(view.getBigInt64(at, true));
  }
  return out;
}
