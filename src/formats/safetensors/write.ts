import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { B158Error, ioError } from "../../errors.js";
import { DTYPE_BYTES, type Dtype } from "./dtypes.js";

/**
 * A deterministic safetensors writer: the same tensors give the same bytes. The header JSON is
 * written with keys in a fixed order (__metadata__ first, then tensors in the order given),
 * space-padded to a multiple of 8 as the reference writer does, and data is contiguous.
 */

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Little-endian element bytes, row-major. */
  readonly data: Uint8Array;
}

export interface WriteOptions {
  readonly metadata?: Readonly<Record<string, string>>;
  /** Sort tensors by name (the reference writer sorts by dtype size, then name; any fixed order is valid). */
  readonly sort?: boolean;
}

/** The 8-byte prefix plus the padded header for these tensors. */
export function encodeSafetensorsHeader(tensors: readonly TensorToWrite[], options: WriteOptions = {}): Uint8Array {
  const ordered = options.sort ? [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : tensors;
  const seen = new Set<string>();
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = { ...options.metadata };
  let offset = 0;
  for (const tensor of ordered) {
    if (seen.has(tensor.name) || tensor.name === "__metadata__") {
      throw new B158Error("E_SAFETENSORS_DUPLICATE", `tensor name "${tensor.name}" is used twice (or is reserved)`, { details: { tensor: tensor.name } });
    }
    seen.add(tensor.name);
    const expected = tensor.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[tensor.dtype];
    if (tensor.data.byteLength !== expected) {
      throw new B158Error("E_SAFETENSORS_BYTE_LENGTH", `tensor "${tensor.name}" has ${tensor.data.byteLength} bytes; shape ${JSON.stringify(tensor.shape)} of ${tensor.dtype} needs ${expected}`, {
        details: { tensor: tensor.name, bytes: tensor.data.byteLength, expected },
      });
    }
    header[tensor.name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** The whole file in memory: for tests and tiny fixtures. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], options: WriteOptions = {}): Uint8Array {
  const ordered = options.sort ? [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : tensors;
  const head = encodeSafetensorsHeader(ordered, { ...options, sort: false });
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

/** Writes to a temp file beside `path`, then renames: a crash never leaves a partial file at `path`. */
export async function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], options: WriteOptions = {}): Promise<void> {
  const ordered = options.sort ? [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : tensors;
  const head = encodeSafetensorsHeader(ordered, { ...options, sort: false });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx");
    try {
      await handle.write(head);
      for (const tensor of ordered) if (tensor.data.byteLength > 0) await handle.write(tensor.data);
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
