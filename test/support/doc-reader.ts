import { createHash } from "node:crypto";

/**
 * A .b158 reader written from docs/FORMAT.md and docs/layouts.md alone: nothing here comes from
 * src/ or schemas/ (its own MessagePack decoding, its own field rules from FORMAT.md's tables, its
 * own unpackers; node built-ins only), so where it and b158's reader disagree, the documents are
 * what is missing or wrong. test/doc-reader.spec.ts holds the two side by side.
 * In-memory and plain on purpose: clarity over speed.
 */

/** A refusal, with the code FORMAT.md §3 gives the rule. */
export class DocError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

const refuse = (code: string, message: string): never => {
  throw new DocError(code, message);
};

// ---------------------------------------------------------------------------------------------
// FORMAT.md §1.2: the header's MessagePack

const MAX_DEPTH = 64;

/** The value the header bytes hold; bin values come back as Uint8Array. */
export function decodeMessagePack(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let at = 0;
  const bad = (why: string): never => refuse("E_B158_HEADER", `${why} (header byte ${at})`);
  const take = (n: number): number => {
    if (at + n > bytes.length) bad("runs past the header");
    at += n;
    return at - n;
  };
  const str = (n: number): string => {
    const from = take(n);
    try {
      return utf8.decode(bytes.subarray(from, from + n));
    } catch {
      return bad("a string that is not UTF-8");
    }
  };
  const bin = (n: number): Uint8Array => {
    const from = take(n);
    return bytes.slice(from, from + n);
  };
  const arr = (n: number, level: number): unknown[] => {
    if (level > MAX_DEPTH) bad("nested more than 64 levels");
    if (n > bytes.length - at) bad("an array longer than the header");
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(read(level));
    return out;
  };
  const map = (n: number, level: number): Record<string, unknown> => {
    if (level > MAX_DEPTH) bad("nested more than 64 levels");
    if (2 * n > bytes.length - at) bad("a map longer than the header");
    const out = new Map<string, unknown>();
    for (let i = 0; i < n; i++) {
      const key = read(level);
      if (typeof key !== "string") bad("a map key that is not a string");
      if (out.has(key as string)) bad(`the key ${key as string} twice`);
      out.set(key as string, read(level));
    }
    const object: Record<string, unknown> = {};
    for (const [k, v] of out) Object.defineProperty(object, k, { value: v, enumerable: true, writable: true, configurable: true });
    return object;
  };
  // `level`: how many maps/arrays enclose the value being read (the header map is at level 1)
  const read = (enclosing: number): unknown => {
    const level = enclosing + 1;
    const b = bytes[take(1)]!;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 256;
    if (b < 0x90) return map(b & 15, level);
    if (b < 0xa0) return arr(b & 15, level);
    if (b < 0xc0) return str(b & 31);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(bytes[take(1)]!);
      case 0xc5: return bin(view.getUint16(take(2)));
      case 0xc6: return bin(view.getUint32(take(4)));
      case 0xca: return view.getFloat32(take(4));
      case 0xcb: return view.getFloat64(take(8));
      case 0xcc: return bytes[take(1)]!;
      case 0xcd: return view.getUint16(take(2));
      case 0xce: return view.getUint32(take(4));
      case 0xcf: return Number(view.getBigUint64(take(8)));
      case 0xd0: return view.getInt8(take(1));
      case 0xd1: return view.getInt16(take(2));
      case 0xd2: return view.getInt32(take(4));
      case 0xd3: return Number(view.getBigInt64(take(8)));
      case 0xd9: return str(bytes[take(1)]!);
      case 0xda: return str(view.getUint16(take(2)));
      case 0xdb: return str(view.getUint32(take(4)));
      case 0xdc: return arr(view.getUint16(take(2)), level);
      case 0xdd: return arr(view.getUint32(take(4)), level);
      case 0xde: return map(view.getUint16(take(2)), level);
      case 0xdf: return map(view.getUint32(take(4)), level);
      default: return bad(`the format byte 0x${b.toString(16)} (extension types and 0xc1 are not allowed)`);
    }
  };
  const value = read(0);
  if (at !== bytes.length) bad("bytes after the header's value");
  return value;
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §1: the container

export interface DocTensor {
  readonly name: string;
  readonly shape: number[];
  readonly role: string;
  readonly layout: string;
  readonly params: Record<string, unknown>;
  readonly scale?: number;
  readonly group_size?: number;
  readonly offset: number;
  readonly length: number;
  readonly sha256: string;
  /** Absolute position of the payload. */
  readonly at: number;
}

export interface DocFile {
  readonly bytes: Uint8Array;
  readonly major: number;
  readonly minor: number;
  readonly dataOffset: number;
  readonly header: Record<string, unknown>;
  readonly tensors: DocTensor[];
}

const MAGIC = [0x89, 0x42, 0x31, 0x35, 0x38, 0x0d, 0x0a, 0x1a];
const TERNARY = ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0", "q2_0"];
const ELEMENT_BYTES: Record<string, number> = { f32: 4, i32: 4, f16: 2, bf16: 2, i16: 2, f64: 8, i64: 8, i8: 1, u8: 1, bool: 1 };
/** The block of weights each layout stores a d for (FORMAT.md §1.7). */
const SCALE_BLOCK: Record<string, number> = { tq1_0: 256, tq2_0: 256, q2_0: 64 };
const SAFE = 2 ** 53 - 1;

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);

function hasBytes(value: unknown): boolean {
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.some(hasBytes);
  if (isMap(value)) return Object.values(value).some(hasBytes);
  return false;
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §1.3-1.5: the header's fields, from the tables (unknown keys allowed everywhere)

/** "integer": a finite number with no fractional part, 0 .. 2^53 - 1 (or from `min`). */
const isInteger = (v: unknown, min = 0) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= SAFE;
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === "string";
const oneOf = (v: unknown, values: readonly unknown[]) => values.includes(v);
const HEX64 = /^[0-9a-f]{64}$/;
const FAMILIES = ["bitnet-1bitllm", "bitnet-latent", "bitnet-packed", "llama-bitnet-packed", "generic", "fake-quantized", "bitnet-embedding"];
const ROLES = ["ternary-linear", "embedding", "lm-head", "norm", "other"];
const FLOAT_OPTION = ["f32", "f16", "bf16", null];

/** The first rule of §1.3-1.5 the header breaks, or undefined. `header.files` holds byte lengths here. */
function fieldProblem(h: Record<string, unknown>): string | undefined {
  for (const key of ["format", "model", "files", "provenance", "tensors", "tool"]) if (!(key in h)) return `no ${key}`;
  if (h.format !== "b158") return "format";
  const model = h.model;
  if (!isMap(model) || !("family" in model) || !("architecture" in model) || !("config" in model)) return "model";
  if (!oneOf(model.family, FAMILIES) || !(model.architecture === null || isString(model.architecture)) || !(model.config === null || isMap(model.config))) return "model";
  if (!isMap(h.files) || Object.keys(h.files).some((name) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/.test(name))) return "files";
  const p = h.provenance;
  if (!isMap(p) || !isMap(p.source) || !isMap(p.options) || !Array.isArray(p.files)) return "provenance";
  const source = p.source;
  if (!oneOf(source.kind, ["local", "hub"])) return "provenance.source.kind";
  if (("repo" in source && !isString(source.repo)) || ("revision" in source && !isString(source.revision))) return "provenance.source";
  if ("commit" in source && !(isString(source.commit) && /^[0-9a-f]{40}$/.test(source.commit))) return "provenance.source.commit";
  for (const f of p.files) {
    if (!isMap(f) || !(isString(f.name) && f.name.length > 0) || !isInteger(f.size)) return "provenance.files";
    if ("sha256" in f && !(isString(f.sha256) && HEX64.test(f.sha256))) return "provenance.files[].sha256";
  }
  const o = p.options;
  if (!oneOf(o.layout, TERNARY)) return "provenance.options.layout";
  if ("i2s_variant" in o && !oneOf(o.i2s_variant, ["x86", "arm"])) return "provenance.options.i2s_variant";
  for (const key of ["fallback", "float_dtype", "embeddings"]) if (key in o && !oneOf(o[key], FLOAT_OPTION)) return `provenance.options.${key}`;
  if ("ternarize" in o && !(Array.isArray(o.ternarize) && o.ternarize.every(isString))) return "provenance.options.ternarize";
  if ("kernel_config_sha256" in o && !(o.kernel_config_sha256 === null || (isString(o.kernel_config_sha256) && HEX64.test(o.kernel_config_sha256)))) return "provenance.options.kernel_config_sha256";
  if ("weights" in o && !oneOf(o.weights, ["latent", "quantized"])) return "provenance.options.weights";
  if (!Array.isArray(h.tensors)) return "tensors";
  for (const t of h.tensors) {
    const problem = tensorProblem(t);
    if (problem !== undefined) return `tensors: ${problem}`;
  }
  const tool = h.tool;
  if (!isMap(tool) || !isString(tool.name) || !isString(tool.version)) return "tool";
  return undefined;
}

function tensorProblem(t: unknown): string | undefined {
  if (!isMap(t)) return "an entry that is not a map";
  for (const key of ["name", "gguf_name", "shape", "role", "layout", "params", "source_dtype", "offset", "length", "sha256"]) if (!(key in t)) return `no ${key}`;
  if (!(isString(t.name) && t.name.length > 0) || !(t.gguf_name === null || isString(t.gguf_name))) return "name";
  if (!Array.isArray(t.shape) || t.shape.length > 8 || !t.shape.every((d) => isInteger(d))) return "shape";
  if (!oneOf(t.role, ROLES)) return "role";
  if (!(oneOf(t.layout, TERNARY) || (isString(t.layout) && Object.hasOwn(ELEMENT_BYTES, t.layout)))) return "layout";
  if (!isMap(t.params)) return "params";
  if (!(isString(t.source_dtype) && /^[A-Z0-9_]+$/.test(t.source_dtype))) return "source_dtype";
  if (!isInteger(t.offset) || !isInteger(t.length) || !(isString(t.sha256) && HEX64.test(t.sha256))) return "offset, length or sha256";
  if ("scale" in t && !isNumber(t.scale)) return "scale";
  if ("group_size" in t && !isInteger(t.group_size, 1)) return "group_size";
  if (!TERNARY.includes(t.layout as string)) return "scale" in t || "group_size" in t ? "a scale on a plain array" : undefined;
  // §1.5 and §1.7: a ternary tensor
  if (("scale" in t) === ("group_size" in t)) return "not exactly one of scale and group_size";
  if ("group_size" in t && SCALE_BLOCK[t.layout as string] === undefined) return "group_size on a layout with one scale per tensor";
  if (t.shape.length !== 2 || !t.shape.every((d) => isInteger(d, 1))) return "a ternary shape";
  if (!oneOf(t.role, ["ternary-linear", "embedding", "lm-head"])) return "a ternary role";
  const params = t.params;
  switch (t.layout) {
    case "i2_s":
      return (params.block_size === 128 && params.variant === "x86") || (params.block_size === 64 && params.variant === "arm") ? undefined : "i2_s params";
    case "tl1":
    case "tl2": {
      const tiling = isInteger(params.BM, 1) && isInteger(params.BK, 1) && oneOf(params.tiling_source, ["preset", "computed", "kernel-config"]);
      return tiling && oneOf(params.bm, t.layout === "tl1" ? [32, 64] : [32]) ? undefined : `${t.layout as string} params`;
    }
    default:
      return params.block_size === SCALE_BLOCK[t.layout as string] ? undefined : "block_size";
  }
}

/** FORMAT.md §2.1, steps 1-10. */
export function openDoc(bytes: Uint8Array): DocFile {
  const size = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number) => view.getBigUint64(at, true);
  // 1-2
  if (size < 64) refuse(size >= 8 && MAGIC.some((b, i) => bytes[i] !== b) ? "E_B158_MAGIC" : "E_B158_TRUNCATED", "shorter than the preamble");
  if (MAGIC.some((b, i) => bytes[i] !== b)) refuse("E_B158_MAGIC", "magic");
  const major = view.getUint16(8, true);
  const minor = view.getUint16(10, true);
  if (major !== 1) refuse("E_B158_VERSION", `major ${major}`);
  if (view.getUint32(12, true) !== 0) refuse("E_B158_VERSION", "flags");
  // 3
  const headerLength = u64(16);
  if (headerLength < 1n || headerLength > 64n * 1024n * 1024n) refuse("E_B158_HEADER", "header_length out of range");
  if (64n + headerLength > BigInt(size)) refuse("E_B158_TRUNCATED", "header past the end");
  // 4
  const dataOffsetBig = u64(24);
  if (dataOffsetBig % 4096n !== 0n || dataOffsetBig < 64n + headerLength) refuse("E_B158_OFFSETS", "data_offset");
  if (dataOffsetBig > BigInt(size)) refuse("E_B158_TRUNCATED", "data_offset past the end");
  const headerEnd = 64 + Number(headerLength);
  const dataOffset = Number(dataOffsetBig);
  // 5-6
  const headerBytes = bytes.subarray(64, headerEnd);
  if (!Buffer.from(createHash("sha256").update(headerBytes).digest()).equals(Buffer.from(bytes.subarray(32, 64)))) refuse("E_B158_HEADER", "header sha256");
  if (bytes.subarray(headerEnd, dataOffset).some((b) => b !== 0)) refuse("E_B158_HEADER", "nonzero bytes before data_offset");
  // 7
  const header = decodeMessagePack(headerBytes);
  // 8: §1.2 steps 1-4
  if (!isMap(header)) return refuse("E_B158_SCHEMA", "the header is not a map");
  let files: unknown = header.files;
  if (isMap(files)) {
    const lengths: Record<string, number> = {};
    for (const [name, value] of Object.entries(files)) {
      if (!(value instanceof Uint8Array)) refuse("E_B158_SCHEMA", `files.${name} is not bytes`);
      Object.defineProperty(lengths, name, { value: (value as Uint8Array).length, enumerable: true });
    }
    files = lengths;
  }
  const forSchema = { ...header, files };
  if (hasBytes(forSchema)) refuse("E_B158_SCHEMA", "bytes outside files");
  const broken = fieldProblem(forSchema);
  if (broken !== undefined) refuse("E_B158_SCHEMA", broken);
  const entries = header.tensors as Record<string, unknown>[];
  const names = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name as string)) refuse("E_B158_SCHEMA", `tensor ${e.name as string} twice`);
    names.add(e.name as string);
  }
  // 9
  const tensors: DocTensor[] = [];
  let next = 0;
  let end = 0;
  for (const e of entries) {
    const t = e as unknown as Omit<DocTensor, "at">;
    const length = payloadLength(t);
    if (t.group_size !== undefined && groupSizeProblem(t)) refuse("E_B158_LAYOUT", `${t.name}: group_size`);
    if (t.length !== length) refuse("E_B158_LAYOUT", `${t.name}: length ${t.length}, the layout needs ${length}`);
    if (t.offset !== next) refuse("E_B158_OFFSETS", `${t.name}: offset ${t.offset}, expected ${next}`);
    end = t.offset + t.length;
    next = Math.ceil(end / 64) * 64;
    tensors.push({ ...t, at: dataOffset + t.offset });
  }
  // 10
  if (dataOffset + end > size) refuse("E_B158_TRUNCATED", "the last payload ends past the file");
  if (dataOffset + end < size) refuse("E_B158_OFFSETS", "bytes after the last payload");
  return { bytes, major, minor, dataOffset, header, tensors };
}

/** FORMAT.md §1.6: the payload length, or E_B158_LAYOUT when the shape or parameters do not fit. */
function payloadLength(t: Omit<DocTensor, "at">): number {
  const bad = (why: string): never => refuse("E_B158_LAYOUT", `${t.name}: ${why}`);
  if (!TERNARY.includes(t.layout)) {
    const length = t.shape.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[t.layout]!;
    return length > SAFE ? bad("the length exceeds 2^53 - 1") : length;
  }
  const [M, K] = t.shape as [number, number];
  const p = t.params as Record<string, number>;
  switch (t.layout) {
    case "i2_s":
      if (K % p.block_size! !== 0) bad("K % block_size");
      return (M * K) / 4 + 32;
    case "tl1": {
      const by = 256 / p.bm!;
      if (p.BM! % p.bm! !== 0 || p.BK! % by !== 0 || M % p.BM! !== 0 || K % p.BK! !== 0) bad("TL1 tiling");
      return (M * K) / 4;
    }
    case "tl2": {
      const K2 = K % p.BK!;
      if (p.BM! % 32 !== 0 || p.BK! % 24 !== 0 || M % p.BM! !== 0 || K < 256 || K2 % 32 !== 0 || K2 > 256 || K - K2 < 1) bad("TL2 tiling");
      return Math.floor((Math.floor(((K - 256) * M) / 3) * 5) / 8) + 64 * M;
    }
    case "tq1_0":
    case "tq2_0":
      if (K % 256 !== 0) bad("K % 256");
      return ((M * K) / 256) * (t.layout === "tq1_0" ? 54 : 66);
    default:
      if (K % 64 !== 0) bad("K % 64");
      return ((M * K) / 64) * 18;
  }
}

/** FORMAT.md §1.7's table: G a multiple of the layout's block that divides K (the schema keeps group_size off i2_s/tl1/tl2). */
function groupSizeProblem(t: Omit<DocTensor, "at">): boolean {
  const block = SCALE_BLOCK[t.layout];
  return block === undefined || t.group_size! % block !== 0 || t.shape[1]! % t.group_size! !== 0;
}

export function tensorOf(file: DocFile, name: string): DocTensor {
  const t = file.tensors.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no tensor ${name}`);
  return t;
}

const payloadOf = (file: DocFile, t: DocTensor) => file.bytes.subarray(t.at, t.at + t.length);

// ---------------------------------------------------------------------------------------------
// layouts.md: the unpackers

/** f16 bits to a number (IEEE binary16). */
export function f16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 31;
  const f = bits & 1023;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f === 0 ? sign * Infinity : NaN;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

/** f16(x) of FORMAT.md §1.7: x to float32, then to binary16 round-to-nearest-even, as a number. */
export function roundToF16(x: number): number {
  const v = Math.fround(x);
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= 65520) return Math.sign(v) * Infinity;
  // the spacing of f16 values around a: 2^-24 below 2^-14, else 2^(exponent - 10)
  const step = a < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(a)) - 10);
  const q = a / step;
  let n = Math.floor(q);
  if (q - n > 0.5 || (q - n === 0.5 && n % 2 === 1)) n += 1;
  return Math.sign(v) * n * step;
}

const codeError = (layout: string, at: number, what: string): never => refuse("E_PACKED_CODE", `${layout} payload byte ${at}: ${what}`);

export interface Decoded {
  readonly codes: Int8Array;
  /** TQ1_0, TQ2_0, Q2_0: every block's d, in payload order. */
  readonly d?: Float32Array;
}

export function decodeI2S(bytes: Uint8Array, M: number, K: number, B: number): Decoded & { readonly f32: number } {
  const codes = new Int8Array(M * K);
  const quarter = B / 4;
  for (let i = 0; i < M * K; i++) {
    const b = Math.floor(i / B);
    const j = i % B;
    const at = b * quarter + (j % quarter);
    const c = (bytes[at]! >> (6 - 2 * Math.floor(j / quarter))) & 3;
    if (c === 3) codeError("i2_s", at, "code 3");
    codes[i] = c - 1;
  }
  const f32 = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat32((M * K) / 4, true);
  return { codes, f32 };
}

export function decodeTq2(bytes: Uint8Array, M: number, K: number): Decoded {
  const blocks = (M * K) / 256;
  const codes = new Int8Array(M * K);
  const d = new Float32Array(blocks);
  for (let blk = 0; blk < blocks; blk++) {
    const o = blk * 66;
    for (let e = 0; e < 256; e++) {
      const h = Math.floor(e / 128);
      const n = Math.floor((e % 128) / 32);
      const at = o + 32 * h + (e % 32);
      const c = (bytes[at]! >> (2 * n)) & 3;
      if (c === 3) codeError("tq2_0", at, "code 3");
      codes[blk * 256 + e] = c - 1;
    }
    d[blk] = f16(bytes[o + 64]! | (bytes[o + 65]! << 8));
  }
  return { codes, d };
}

/** Digit n (0 = most significant) of a TQ1_0 byte, as ggml decodes it. */
const digit = (q: number, n: number) => ((((q * 3 ** n) % 256) * 3) >> 8);
const encode5 = (digits: number[]) => Math.ceil((digits.reduce((v, x) => v * 3 + x, 0) * 256) / 243);

export function decodeTq1(bytes: Uint8Array, M: number, K: number): Decoded {
  const blocks = (M * K) / 256;
  const codes = new Int8Array(M * K);
  const d = new Float32Array(blocks);
  for (let blk = 0; blk < blocks; blk++) {
    const o = blk * 54;
    const put = (at: number, elements: number[], qh: boolean) => {
      const q = bytes[at]!;
      const digits = [0, 1, 2, 3, 4].map((n) => digit(q, n));
      if (encode5(digits) !== q || (qh && digits[4] !== 0)) codeError("tq1_0", at, `byte 0x${q.toString(16)} is not canonical`);
      elements.forEach((e, n) => (codes[blk * 256 + e] = digits[n]! - 1));
    };
    for (let m = 0; m < 32; m++) put(o + m, [0, 1, 2, 3, 4].map((n) => m + 32 * n), false);
    for (let m = 0; m < 16; m++) put(o + 32 + m, [0, 1, 2, 3, 4].map((n) => 160 + m + 16 * n), false);
    for (let j = 0; j < 4; j++) put(o + 48 + j, [0, 1, 2, 3].map((n) => 240 + j + 4 * n), true);
    d[blk] = f16(bytes[o + 52]! | (bytes[o + 53]! << 8));
  }
  return { codes, d };
}

export function decodeQ2(bytes: Uint8Array, M: number, K: number): Decoded {
  const blocks = (M * K) / 64;
  const codes = new Int8Array(M * K);
  const d = new Float32Array(blocks);
  for (let blk = 0; blk < blocks; blk++) {
    const o = blk * 18;
    d[blk] = f16(bytes[o]! | (bytes[o + 1]! << 8));
    for (let j = 0; j < 64; j++) {
      const at = o + 2 + Math.floor(j / 4);
      const c = (bytes[at]! >> (2 * (j % 4))) & 3;
      if (c === 3) codeError("q2_0", at, "code 3");
      codes[blk * 64 + j] = c - 1;
    }
  }
  return { codes, d };
}

/** Pair index back to the two weights (layouts.md, Conventions). */
function writePair(codes: Int8Array, i: number, P: number, layout: string, at: number): void {
  if (P > 8) codeError(layout, at, `pair index ${P}`);
  codes[i] = Math.floor(P / 3) - 1;
  codes[i + 1] = (P % 3) - 1;
}

export function decodeTl1(bytes: Uint8Array, M: number, K: number, BM: number, BK: number, bm: number): Decoded {
  const codes = new Int8Array(M * K);
  const by = 256 / bm;
  let o = 0;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K / BK; i1++)
      for (let i2 = 0; i2 < BM / bm; i2++)
        for (let i3 = 0; i3 < BK / by; i3++)
          for (let i4 = 0; i4 < bm / 16; i4++)
            for (let i5 = 0; i5 < by / 4; i5++)
              for (let r = 0; r < 16; r++) {
                const m = i0 * BM + i2 * bm + i4 * 16 + r;
                const j = (i1 * BK) / 2 + (i3 * by) / 2 + i5 * 2;
                writePair(codes, m * K + 2 * j, bytes[o]! >> 4, "tl1", o);
                writePair(codes, m * K + 2 * j + 2, bytes[o]! & 15, "tl1", o);
                o++;
              }
  return { codes };
}

const PERM = [0, 2, 1, 3];
const swapped = (q: number) => PERM[Math.floor(q / 8)]! * 8 + (q % 8);

export function decodeTl2(bytes: Uint8Array, M: number, K: number, BM: number, BK: number): Decoded {
  const K2 = K % BK;
  const K3 = K - K2;
  const T = K3 / 3; // triplets per row
  const magnitude = new Uint8Array(M * T);
  const negative = new Uint8Array(M * T);
  const codes = new Int8Array(M * K);
  // A
  let o = 0;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < BK / 6; i3++)
          for (let q = 0; q < 32; q++) {
            const m = i0 * BM + i2 * 32 + swapped(q);
            const j = (i1 * BK) / 3 + i3 * 2;
            const hi = bytes[o]! >> 4;
            const lo = bytes[o]! & 15;
            if (hi > 13 || lo > 13) codeError("tl2", o, "magnitude over 13");
            magnitude[m * T + j] = hi;
            magnitude[m * T + j + 1] = lo;
            o++;
          }
  // S
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < BK / 24; i3++)
          for (let b = 0; b < 16; b++) {
            const word = bytes[o]! | (bytes[o + 1]! << 8);
            for (let a = 0; a < 16; a++) {
              const m = i0 * BM + i2 * 32 + (a % 2) * 16 + b;
              const j = (i1 * BK) / 3 + i3 * 8 + Math.floor(a / 2);
              const bit = (word >> (15 - a)) & 1;
              if (bit === 1 && magnitude[m * T + j] === 0) codeError("tl2", a < 8 ? o + 1 : o, "a sign on a zero magnitude");
              negative[m * T + j] = bit;
            }
            o += 2;
          }
  for (let m = 0; m < M; m++)
    for (let j = 0; j < T; j++) {
      const v = negative[m * T + j] ? -magnitude[m * T + j]! : magnitude[m * T + j]!;
      const a = Math.round(v / 9);
      const b = Math.round((v - 9 * a) / 3);
      codes.set([a, b, v - 9 * a - 3 * b], m * K + 3 * j);
    }
  // B
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K2 / 32; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < 8; i3++)
          for (let q = 0; q < 32; q++) {
            const m = i0 * BM + i2 * 32 + swapped(q);
            const p = i1 * 16 + i3 * 2;
            writePair(codes, m * K + K3 + 2 * p, bytes[o]! >> 4, "tl2", o);
            writePair(codes, m * K + K3 + 2 * p + 2, bytes[o]! & 15, "tl2", o);
            o++;
          }
  return { codes };
}

/** layouts.md: the codes of a ternary payload (and the blocks' d where there are some); E_PACKED_CODE on an invalid field. */
export function unpack(layout: string, params: Record<string, unknown>, bytes: Uint8Array, M: number, K: number): Decoded & { readonly f32?: number } {
  const p = params as Record<string, number>;
  switch (layout) {
    case "i2_s":
      return decodeI2S(bytes, M, K, p.block_size!);
    case "tl1":
      return decodeTl1(bytes, M, K, p.BM!, p.BK!, p.bm!);
    case "tl2":
      return decodeTl2(bytes, M, K, p.BM!, p.BK!);
    case "tq1_0":
      return decodeTq1(bytes, M, K);
    case "tq2_0":
      return decodeTq2(bytes, M, K);
    case "q2_0":
      return decodeQ2(bytes, M, K);
  }
  throw new Error(`${layout} is not ternary`);
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §2.2-2.3: decoding

export type DocScale = number | { readonly groupSize: number; readonly values: Float32Array };

const anyNonzero = (codes: Int8Array, from: number, to: number) => codes.subarray(from, to).some((c) => c !== 0);

/** §1.7: group scales from the blocks' d; E_B158_LAYOUT when a group's nonzero blocks disagree. */
function groupScales(t: DocTensor, decoded: Decoded): { groupSize: number; values: Float32Array } {
  const [M, K] = t.shape as [number, number];
  const G = t.group_size!;
  const block = SCALE_BLOCK[t.layout]!;
  const values = new Float32Array((M * K) / G);
  for (let g = 0; g < values.length; g++) {
    const seen: number[] = [];
    for (let b = (g * G) / block; b < ((g + 1) * G) / block; b++) if (anyNonzero(decoded.codes, b * block, (b + 1) * block)) seen.push(decoded.d![b]!);
    if (seen.some((d, i) => i > 0 && d !== seen[0])) refuse("E_B158_LAYOUT", `${t.name}: group ${g} has blocks with different d`);
    values[g] = seen[0] ?? 0;
  }
  return { groupSize: G, values };
}

export function decodeTernary(file: DocFile, name: string): { codes: Int8Array; scale: DocScale } {
  const t = tensorOf(file, name);
  const [M, K] = t.shape as [number, number];
  const decoded = unpack(t.layout, t.params, payloadOf(file, t), M, K);
  return { codes: decoded.codes, scale: t.group_size === undefined ? t.scale! : groupScales(t, decoded) };
}

/** §1.7 and §2.2 step 3: scale x code as float32. */
export function effectiveWeights(codes: Int8Array, K: number, scale: DocScale): Float32Array {
  return Float32Array.from(codes, (c, i) => {
    const s = typeof scale === "number" ? scale : scale.values[Math.floor(i / K) * (K / scale.groupSize) + Math.floor((i % K) / scale.groupSize)]!;
    return c * Math.fround(s);
  });
}

/** §2.3. */
export function decodePlain(file: DocFile, name: string): Float32Array {
  const t = tensorOf(file, name);
  const bytes = payloadOf(file, t);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = ELEMENT_BYTES[t.layout]!;
  return Float32Array.from({ length: bytes.length / size }, (_, i) => {
    const at = i * size;
    switch (t.layout) {
      case "f32": return view.getFloat32(at, true);
      case "f16": return f16(view.getUint16(at, true));
      case "bf16": return new Float32Array(new Uint32Array([view.getUint16(at, true) << 16]).buffer)[0]!;
      case "f64": return view.getFloat64(at, true);
      case "i8": return view.getInt8(at);
      case "i16": return view.getInt16(at, true);
      case "i32": return view.getInt32(at, true);
      case "i64": return Number(view.getBigInt64(at, true));
      default: return view.getUint8(at); // u8, bool
    }
  });
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §2.4: validation

export interface Finding {
  readonly code: string;
  readonly tensor: string;
}

export function validateDoc(file: DocFile): Finding[] {
  const findings: Finding[] = [];
  file.tensors.forEach((t, i) => {
    const found = (code: string) => findings.push({ code, tensor: t.name });
    const payload = payloadOf(file, t);
    if (createHash("sha256").update(payload).digest("hex") !== t.sha256) return found("E_B158_HASH");
    const next = i + 1 < file.tensors.length ? file.tensors[i + 1]!.at : t.at + t.length;
    if (file.bytes.subarray(t.at + t.length, next).some((b) => b !== 0)) found("E_B158_PADDING");
    if (!TERNARY.includes(t.layout)) {
      if (["f32", "f16", "bf16"].includes(t.layout) && decodePlain(file, t.name).some((v) => !Number.isFinite(v))) found("E_NONFINITE");
      return;
    }
    const [M, K] = t.shape as [number, number];
    let decoded: Decoded & { readonly f32?: number };
    try {
      decoded = unpack(t.layout, t.params, payload, M, K);
    } catch (error) {
      if (error instanceof DocError) return found(error.code);
      throw error;
    }
    if (t.scale !== undefined && !(Number.isFinite(t.scale) && t.scale > 0)) found("E_SCALE_INVALID");
    if (!decoded.codes.some((c) => c !== 0)) found("E_ALL_ZERO");
    const block = SCALE_BLOCK[t.layout];
    if (t.group_size !== undefined) {
      let groups: { groupSize: number; values: Float32Array };
      try {
        groups = groupScales(t, decoded);
      } catch (error) {
        if (error instanceof DocError) return found(error.code);
        throw error;
      }
      const G = t.group_size;
      if (groups.values.some((s, g) => !(Number.isFinite(s) && s > 0) && anyNonzero(decoded.codes, g * G, (g + 1) * G))) found("E_SCALE_INVALID");
      return;
    }
    const scale = t.scale!;
    if (!(Number.isFinite(scale) && scale > 0)) return;
    if (t.layout === "i2_s" && decoded.f32 !== Math.fround(scale)) found("E_B158_LAYOUT");
    if (block !== undefined) {
      const d = roundToF16(scale);
      if (d === 0 || !Number.isFinite(d)) return found("E_SCALE_INVALID");
      const mismatch = Array.from(decoded.d!).some((x, b) => x !== d && anyNonzero(decoded.codes, b * block, (b + 1) * block));
      if (mismatch) found("E_B158_LAYOUT");
    }
  });
  return findings;
}

// ---------------------------------------------------------------------------------------------
// FORMAT.md §1.9: the order a writer lists tensors in

/** Negative when tensor `a` comes before `b`. */
export function docNameOrder(a: string, b: string): number {
  // runs: text, digits, text, ..., text (ASCII digits only)
  const runs = (name: string) => name.split(/([0-9]+)/);
  const ra = runs(a);
  const rb = runs(b);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    if (x === y) continue;
    if (i % 2 === 1) {
      const byValue = BigInt(x) - BigInt(y);
      if (byValue !== 0n) return byValue < 0n ? -1 : 1;
      return x < y ? -1 : 1; // equal values by their characters (all ASCII digits)
    }
    const cx = Array.from(x, (c) => c.codePointAt(0)!);
    const cy = Array.from(y, (c) => c.codePointAt(0)!);
    for (let j = 0; j < Math.min(cx.length, cy.length); j++) if (cx[j] !== cy[j]) return cx[j]! - cy[j]!;
    return cx.length - cy.length;
  }
  return ra.length - rb.length;
}
