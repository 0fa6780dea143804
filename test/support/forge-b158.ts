import { createHash } from "node:crypto";
import { decodeHeader, encodeHeader, type B158Header } from "../../src/formats/b158/header.js";

/**
 * Rewrites a .b158 as a buggy or hostile writer would: the decoded header edited (anything goes),
 * payload bytes edited with their sha256 rewritten to match, and the preamble (header length,
 * data offset, header sha256) made consistent again, so only the intended rule is broken.
 */
export interface B158Edit {
  /** Edits the decoded header in place (tensors, model.config, ...). */
  readonly header?: (header: { tensors: { name: string; offset: number; length: number; sha256: string }[] } & Record<string, unknown>) => void;
  /** Sets payload byte `at` of `tensor` to `value`, and the tensor's sha256 to match. */
  readonly payload?: readonly { readonly tensor: string; readonly at: number; readonly value: number }[];
  /**
   * After the header edit, lays the payloads out again from their (edited) lengths, each cut or
   * zero-padded to its length and re-hashed: a tensor can then change size without breaking offsets.
   */
  readonly relayout?: boolean;
}

const u64 = (bytes: Uint8Array, at: number): number => Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(at, true));

export function forgeB158(bytes: Uint8Array, edit: B158Edit): Uint8Array {
  const header = decodeHeader(bytes.subarray(64, 64 + u64(bytes, 16))) as Parameters<NonNullable<B158Edit["header"]>>[0];
  const data = bytes.slice(u64(bytes, 24));
  for (const { tensor, at, value } of edit.payload ?? []) {
    const t = header.tensors.find((x) => x.name === tensor);
    if (t === undefined) throw new Error(`no tensor ${tensor}`);
    data[t.offset + at] = value;
    t.sha256 = createHash("sha256").update(data.subarray(t.offset, t.offset + t.length)).digest("hex");
  }
  const before = new Map(header.tensors.map((t) => [t.name, data.subarray(t.offset, t.offset + t.length)]));
  edit.header?.(header);
  if (!edit.relayout) return signB158(header, data);
  const parts: Uint8Array[] = [];
  let end = 0;
  for (const t of header.tensors) {
    t.offset = Math.ceil(end / 64) * 64;
    const payload = new Uint8Array(t.length);
    payload.set((before.get(t.name) ?? new Uint8Array(0)).subarray(0, t.length));
    t.sha256 = createHash("sha256").update(payload).digest("hex");
    parts.push(new Uint8Array(t.offset - end), payload);
    end = t.offset + t.length;
  }
  const laid = new Uint8Array(end);
  let at = 0;
  for (const part of parts) {
    laid.set(part, at);
    at += part.byteLength;
  }
  return signB158(header, laid);
}

/** A .b158 around `header` and the data section: preamble, lengths and header sha256 consistent. */
export function signB158(header: unknown, data: Uint8Array): Uint8Array {
  return signB158Bytes(encodeHeader(header as B158Header), data);
}

/** The same around header bytes already encoded (any MessagePack, valid or not). */
export function signB158Bytes(encoded: Uint8Array, data: Uint8Array): Uint8Array {
  const dataOffset = Math.ceil((64 + encoded.byteLength) / 4096) * 4096;
  const out = new Uint8Array(dataOffset + data.byteLength);
  out.set([0x89, 0x42, 0x31, 0x35, 0x38, 0x0d, 0x0a, 0x1a]);
  const view = new DataView(out.buffer);
  view.setUint16(8, 1, true);
  view.setBigUint64(16, BigInt(encoded.byteLength), true);
  view.setBigUint64(24, BigInt(dataOffset), true);
  out.set(createHash("sha256").update(encoded).digest(), 32);
  out.set(encoded, 64);
  out.set(data, dataOffset);
  return out;
}
