import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { B158Error, ioError } from "../../errors.js";
import { DTYPE_BYTES, type Dtype } from "./dtypes.js";

/**
 * A deterministic safetensors writer: the same tensors and options give the same bytes.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON, then the data section.
 * - The JSON is one line with no spaces: `__metadata__` first (only when metadata is given), then one
 *   entry per tensor `{"dtype","shape","data_offsets":[begin,end]}`, keys in that order.
 * - The JSON is padded with spaces (0x20) so that N is a multiple of 8, as the reference writer does;
 *   the data section therefore starts 8-aligned.
 * - Tensor order (header entries and data alike) is the order the caller gives, or by name (UTF-16
 *   code-unit order, as `<` compares strings) with `sort: true`. Data is contiguous: each tensor
 *   begins where the previous one ends, the first at 0, and nothing follows the last.
 */

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: Dtype;
  /** Row-major dimensions; each a non-negative safe integer. `[]` is a scalar (one element). */
  readonly shape: readonly number[];
  /** Little-endian element bytes, row-major. */
  readonly data: Uint8Array;
}

export interface WriteOptions {
  /** Written as `__metadata__` (transformers writes `{"format": "pt"}`). Keys keep their insertion order. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Sort tensors by name instead of keeping the given order (the reference writer sorts by dtype size, then name; any fixed order is valid). */
  readonly sort?: boolean;
}

/** The order tensors are written in: as given, or by name with `sort`. */
function orderTensors(tensors: readonly TensorToWrite[], sort: boolean | undefined): readonly TensorToWrite[] {
  return sort ? [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : tensors;
}

/** Checks names, shapes and byte lengths; returns each tensor's data_offsets. */
function layout(tensors: readonly TensorToWrite[]): [number, number][] {
  const seen = new Set<string>();
  const offsets: [number, number][] = [];
  let offset = 0;
  for (const tensor of tensors) {
    if (seen.has(tensor.name) || tensor.name === "__metadata__") {
      throw new B158Error("E_SAFETENSORS_DUPLICATE", `tensor name "${tensor.name}" is used twice or is reserved`, { details: { tensor: tensor.name } });
    }
    seen.add(tensor.name);
    if (!Object.hasOwn(DTYPE_BYTES, tensor.dtype)) {
      throw new B158Error("E_SAFETENSORS_DTYPE", `tensor "${tensor.name}" has unknown dtype ${JSON.stringify(tensor.dtype)}`, { details: { tensor: tensor.name, dtype: tensor.dtype } });
    }
    let expected = DTYPE_BYTES[tensor.dtype];
    for (const dim of tensor.shape) {
      if (!Number.isSafeInteger(dim) || dim < 0) {
        throw new B158Error("E_SAFETENSORS_SHAPE", `tensor "${tensor.name}" has shape ${JSON.stringify(tensor.shape)}, which is not a list of non-negative integers`, {
          details: { tensor: tensor.name, shape: [...tensor.shape] },
        });
      }
      expected *= dim;
    }
    if (!Number.isSafeInteger(expected) || !Number.isSafeInteger(offset + expected)) {
      throw new B158Error("E_SAFETENSORS_OVERFLOW", `tensor "${tensor.name}" of shape ${JSON.stringify(tensor.shape)} is too large to index`, { details: { tensor: tensor.name } });
    }
    if (tensor.data.byteLength !== expected) {
      throw new B158Error("E_SAFETENSORS_BYTE_LENGTH", `tensor "${tensor.name}" has ${tensor.data.byteLength} bytes, which does not match shape ${JSON.stringify(tensor.shape)} of ${tensor.dtype} (${expected} bytes)`, {
        details: { tensor: tensor.name, bytes: tensor.data.byteLength, expected },
      });
    }
    offsets.push([offset, offset + expected]);
    offset += expected;
  }
  return offsets;
}

/** The 8-byte length prefix plus the space-padded header JSON, for tensors already in write order. */
function encodeHeader(tensors: readonly TensorToWrite[], metadata: Readonly<Record<string, string>> | undefined): Uint8Array {
  const offsets = layout(tensors);
  // Built by hand, not via an object: JSON.stringify would move integer-like names ("0") first and
  // drop a tensor named "__proto__".
  const entries: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).map(([key, value]) => {
      if (typeof value !== "string") {
        throw new B158Error("E_SAFETENSORS_METADATA", `__metadata__ value for ${JSON.stringify(key)} is not a string`, { details: { key } });
      }
      return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
    });
    entries.push(`"__metadata__":{${pairs.join(",")}}`);
  }
  tensors.forEach((tensor, i) => {
    const entry = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: offsets[i]! };
    entries.push(`${JSON.stringify(tensor.name)}:${JSON.stringify(entry)}`);
  });
  const json = new TextEncoder().encode(`{${entries.join(",")}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** The 8-byte prefix plus the padded header for these tensors (the data section follows it directly). */
export function encodeSafetensorsHeader(tensors: readonly TensorToWrite[], options: WriteOptions = {}): Uint8Array {
  return encodeHeader(orderTensors(tensors, options.sort), options.metadata);
}

/** The whole file in memory: for tests and tiny fixtures. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], options: WriteOptions = {}): Uint8Array {
  const ordered = orderTensors(tensors, options.sort);
  const head = encodeHeader(ordered, options.metadata);
  const total = head.byteLength + ordered.reduce((sum, t) => sum + t.data.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let position = head.byteLength;
  for (const tensor of ordered) {
    out.set(tensor.data, position);
    position += tensor.data.byteLength;
  }
  return out;
}

/**
 * Writes the same bytes as `encodeSafetensors` to `path`, through a temp file beside it that is
 * renamed into place: a crash or error never leaves a partial file at `path`. Overwrites `path`.
 */
export async function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], options: WriteOptions = {}): Promise<void> {
  const ordered = orderTensors(tensors, options.sort);
  const head = encodeHeader(ordered, options.metadata); // validates before any file is touched
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx");
    try {
      await writeAll(handle, head);
      for (const tensor of ordered) await writeAll(handle, tensor.data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true });
    throw ioError(path, "write", cause);
  }
}

/** FileHandle.write may write fewer bytes than asked; loop until all are out. */
async function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.byteLength; ) {
    const { bytesWritten } = await handle.write(data, done, data.byteLength - done);
    if (bytesWritten <= 0) throw new Error("the file system accepted no bytes");
    done += bytesWritten;
  }
}
