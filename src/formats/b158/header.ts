import { Packr } from "msgpackr";
import { B158Error } from "../../errors.js";
import type { LayoutId } from "../../pack/layouts.js";
import type { B158Layout } from "./spec.js";

/** The decoded .b158 header (docs/FORMAT.md §1.2-1.5). */
export interface B158Header {
  readonly format: "b158";
  readonly model: { readonly family: string; readonly architecture: string | null; readonly config: Record<string, unknown> | null };
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly provenance: {
    readonly source: { readonly kind: "local" | "hub"; readonly repo?: string; readonly revision?: string; readonly commit?: string };
    readonly files: readonly { readonly name: string; readonly size: number; readonly sha256?: string }[];
    readonly options: B158Options;
  };
  readonly tensors: readonly B158TensorEntry[];
  readonly tool: { readonly name: string; readonly version: string };
}

export interface B158Options {
  readonly layout: LayoutId;
  readonly i2s_variant: "x86" | "arm";
  readonly fallback: "f32" | "f16" | "bf16" | null;
  readonly float_dtype: "f32" | "f16" | "bf16" | null;
  readonly embeddings: "f32" | "f16" | "bf16" | null;
  readonly ternarize: readonly string[];
  readonly kernel_config_sha256: string | null;
  /** 1.1: the source semantics the user forced with --weights; absent when they came from the checkpoint. */
  readonly weights?: "latent" | "quantized";
}

export interface B158TensorEntry {
  readonly name: string;
  readonly gguf_name: string | null;
  readonly shape: readonly number[];
  readonly role: "ternary-linear" | "embedding" | "lm-head" | "norm" | "other";
  readonly layout: B158Layout;
  readonly params: Readonly<Record<string, number | string>>;
  /** Ternary layouts, one scale per tensor. */
  readonly scale?: number;
  /** 1.1, ternary layouts with per-group scales: weights per group along K (the values are the payload's block d). */
  readonly group_size?: number;
  readonly source_dtype: string;
  readonly offset: number;
  readonly length: number;
  readonly sha256: string;
}

/** Standard MessagePack only (no msgpackr records), fixmaps where they fit, u64 back as numbers. */
const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true, int64AsType: "number" });

/** In a u-mode regex, a surrogate range matches only unpaired halves. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Keys sorted by UTF-8 bytes at every level; binary values and arrays kept as they are. A string
 * UTF-8 cannot encode (a lone surrogate, which a JSON escape in a tensor name or config.json can
 * make) is refused here: written, it would be bytes no reader accepts as a header string.
 */
function canonical(value: unknown, path = "header"): unknown {
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) {
      throw new B158Error("E_MODEL_UNSUPPORTED", `${path}: ${JSON.stringify(value)} holds a lone surrogate, which UTF-8 (and so a .b158 header) cannot encode`, {
        details: { path },
        hint: "Fix the name or value in the checkpoint (a \\uD800-\\uDFFF escape without its pair).",
      });
    }
    return value;
  }
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((item, i) => canonical(item, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return Object.fromEntries(keys.map((k) => [canonical(k, path), canonical((value as Record<string, unknown>)[k], `${path}.${k}`)]));
  }
  return value;
}

export function encodeHeader(header: B158Header): Uint8Array {
  return packr.pack(canonical(header));
}

/** A file the header embeds, by size and sha256; its bytes are read when the header is written. */
export interface EmbeddedFile {
  readonly size: number;
  readonly sha256: string;
  /** The file's bytes, in order (a writer checks their count and hash against the two above). */
  chunks(): AsyncIterable<Uint8Array>;
}

/**
 * A header's bytes around its embedded files' (docs/FORMAT.md §1.2): `head`, then per file in key
 * order its `prefix` (key and bin length) and its `size` bytes, then `tail` make exactly
 * encodeHeader's bytes for the same header with those files. A writer streams the files' bytes
 * from their sources rather than holding them (an 18 MB tokenizer.json, twice over in msgpackr's
 * buffer, was most of what a conversion's memory grew by with the model).
 */
export interface HeaderParts {
  readonly head: Uint8Array;
  readonly files: readonly { readonly name: string; readonly prefix: Uint8Array; readonly size: number }[];
  readonly tail: Uint8Array;
  /** Bytes of the whole header. */
  readonly length: number;
}

/** "files" is the first key in canonical order ("files" < "format" < "model" < ...): fixmap, fixstr "files", then its map. */
const FILES_KEY = Uint8Array.of(0xa5, 0x66, 0x69, 0x6c, 0x65, 0x73);

export function encodeHeaderParts(header: Omit<B158Header, "files">, files: readonly { readonly name: string; readonly size: number }[]): HeaderParts {
  const names = Object.keys(canonical(Object.fromEntries(files.map((f) => [f.name, null])), "header.files") as object);
  if (names.length !== files.length) throw new B158Error("E_INTERNAL", "an embedded file is named twice");
  const sizes = new Map(files.map((f) => [f.name, f.size]));
  const empty = encodeHeader({ ...header, files: {} });
  const at = 1 + FILES_KEY.byteLength;
  if (empty[0]! >>> 4 !== 0x8 || !FILES_KEY.every((b, i) => empty[1 + i] === b) || empty[at] !== 0x80) {
    throw new B158Error("E_INTERNAL", "the header's encoding does not start with its files map");
  }
  const head = Buffer.concat([empty.subarray(0, at), lengthPrefix(names.length, [0x80, 0xde, 0xdf], 16)]);
  const utf8Encoder = new TextEncoder();
  const parts = names.map((name) => {
    const key = utf8Encoder.encode(name);
    const size = sizes.get(name)!;
    return { name, size, prefix: Buffer.concat([lengthPrefix(key.byteLength, [0xa0, 0xd9, 0xda, 0xdb], 32), key, lengthPrefix(size, [-1, 0xc4, 0xc5, 0xc6], 0)]) };
  });
  const tail = empty.slice(at + 1);
  const length = head.byteLength + tail.byteLength + parts.reduce((sum, p) => sum + p.prefix.byteLength + p.size, 0);
  return { head, files: parts, tail, length };
}

/**
 * MessagePack's shortest length prefix: `codes` are [fix (ORed with n, below `fixLimit`; -1: none),
 * 8-bit, 16-bit, 32-bit] (maps have no 8-bit form: pass three codes), big-endian as the format has it.
 */
function lengthPrefix(n: number, codes: readonly number[], fixLimit: number): Uint8Array {
  const [fix, ...sized] = codes as [number, ...number[]];
  if (n < fixLimit) return Uint8Array.of(fix | n);
  const widths = sized.length === 3 ? [1, 2, 4] : [2, 4];
  for (const [i, width] of widths.entries()) {
    if (n < 2 ** (8 * width)) {
      const out = new Uint8Array(1 + width);
      out[0] = sized[i]!;
      for (let b = 0; b < width; b++) out[width - b] = Math.floor(n / 2 ** (8 * b)) & 0xff;
      return out;
    }
  }
  throw new B158Error("E_INTERNAL", `a header length of ${n} is beyond MessagePack's`);
}


/** Deep enough for any header (config.json nests 3-4 levels), as for JSON (strict-json.ts). */
export const MAX_HEADER_DEPTH = 64;

/** Why header bytes are not the MessagePack subset a header may use (docs/FORMAT.md §1.2); the reader reports it as E_B158_HEADER. */
export class HeaderSyntaxError extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes a header: exactly one MessagePack value of the subset docs/FORMAT.md §1.2 allows (nil,
 * booleans, integers, floats, UTF-8 strings, bin, arrays, maps with unique string keys; no
 * extension types, no 0xc1, no trailing bytes), with maps and arrays nested at most
 * MAX_HEADER_DEPTH levels. Anything else throws HeaderSyntaxError, so every reader of a file sees
 * the same values (a duplicate key or a lossy string could mean two things to two readers).
 * Integers come back as numbers (above 2^53 rounded; the schema bounds the fields that matter),
 * bin as Uint8Array (a view into `bytes`). Work is bounded by the bytes: a count is checked
 * against what is left before anything is allocated for it.
 */
export function decodeHeader(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const fail = (why: string): never => {
    throw new HeaderSyntaxError(`${why} at byte ${at}`);
  };
  const need = (n: number): number => {
    if (n > bytes.byteLength - at) fail(`${n} bytes needed, ${bytes.byteLength - at} left`);
    const start = at;
    at += n;
    return start;
  };
  const count = (n: number, perItem: number): number => {
    if (n * perItem > bytes.byteLength - at) fail(`a count of ${n} items in ${bytes.byteLength - at} bytes`);
    return n;
  };
  const text = (n: number): string => {
    const start = need(n);
    try {
      return utf8.decode(bytes.subarray(start, start + n));
    } catch {
      return fail("a string that is not valid UTF-8");
    }
  };
  const value = (depth: number): unknown => {
    const byte = bytes[need(1)]!;
    if (byte <= 0x7f) return byte;
    if (byte >= 0xe0) return byte - 0x100;
    if (byte >= 0xa0 && byte <= 0xbf) return text(byte & 0x1f);
    if (byte >= 0x80 && byte <= 0x8f) return map(byte & 0x0f, depth);
    if (byte >= 0x90 && byte <= 0x9f) return array(byte & 0x0f, depth);
    switch (byte) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return binary(bytes[need(1)]!);
      case 0xc5: return binary(view.getUint16(need(2)));
      case 0xc6: return binary(view.getUint32(need(4)));
      case 0xca: return view.getFloat32(need(4));
      case 0xcb: return view.getFloat64(need(8));
      case 0xcc: return bytes[need(1)]!;
      case 0xcd: return view.getUint16(need(2));
      case 0xce: return view.getUint32(need(4));
      case 0xcf: return Number(view.getBigUint64(need(8)));
      case 0xd0: return view.getInt8(need(1));
      case 0xd1: return view.getInt16(need(2));
      case 0xd2: return view.getInt32(need(4));
      case 0xd3: return Number(view.getBigInt64(need(8)));
      case 0xd9: return text(bytes[need(1)]!);
      case 0xda: return text(view.getUint16(need(2)));
      case 0xdb: return text(view.getUint32(need(4)));
      case 0xdc: return array(view.getUint16(need(2)), depth);
      case 0xdd: return array(view.getUint32(need(4)), depth);
      case 0xde: return map(view.getUint16(need(2)), depth);
      case 0xdf: return map(view.getUint32(need(4)), depth);
    }
    at -= 1;
    return fail(byte === 0xc1 ? "the never-used byte 0xc1" : `an extension type (0x${byte.toString(16)}), which headers do not use`);
  };
  const binary = (n: number): Uint8Array => {
    const start = need(n);
    return new Uint8Array(bytes.buffer, bytes.byteOffset + start, n);
  };
  const nest = (depth: number): number => {
    if (depth >= MAX_HEADER_DEPTH) fail(`maps and arrays nested deeper than ${MAX_HEADER_DEPTH} levels`);
    return depth + 1;
  };
  const array = (n: number, depth: number): unknown[] => {
    const inner = nest(depth);
    const out: unknown[] = [];
    for (let i = count(n, 1); i > 0; i--) out.push(value(inner));
    return out;
  };
  const map = (n: number, depth: number): Record<string, unknown> => {
    const inner = nest(depth);
    const out: Record<string, unknown> = {};
    for (let i = count(n, 2); i > 0; i--) {
      const keyAt = at;
      const key = value(inner);
      if (typeof key !== "string") {
        at = keyAt;
        fail("a map key that is not a string");
      }
      if (Object.hasOwn(out, key as string)) {
        at = keyAt;
        fail(`the key ${JSON.stringify(key)} twice in one map`);
      }
      // defineProperty: a key such as "__proto__" is data, never the object's prototype
      Object.defineProperty(out, key as string, { value: value(inner), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  const decoded = value(0);
  if (at !== bytes.byteLength) fail(`${bytes.byteLength - at} bytes after the header's one value`);
  return decoded;
}
