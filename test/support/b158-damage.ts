import { createHash } from "node:crypto";
import type { ErrorCode } from "../../src/errors.js";
import { decodeHeader, encodeHeader, type B158Header } from "../../src/formats/b158/header.js";
import { signB158Bytes } from "./forge-b158.js";

/**
 * Damaged .b158 files, each breaking one rule of docs/FORMAT.md, made from a good file: what
 * test/b158-format.spec.ts expects b158's reader to refuse, and test/doc-reader.spec.ts expects the
 * reader written from the documents to refuse with the same code.
 */
/** `code` null: the file opens (a rule's edge, on its good side). */
export type Damage = readonly [name: string, make: (good: Uint8Array) => Uint8Array, code: ErrorCode | null];

export const u64 = (bytes: Uint8Array, at: number) => Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at, true));

/** Rewrites the header (and its sha256 and the data offset's padding) so only the intended rule breaks. */
export function withHeader(bytes: Uint8Array, edit: (header: Record<string, unknown>) => void): Uint8Array {
  const headerLength = u64(bytes, 16);
  const dataOffset = u64(bytes, 24);
  const header = decodeHeader(bytes.subarray(64, 64 + headerLength)) as Record<string, unknown>;
  edit(header);
  const encoded = encodeHeader(header as unknown as B158Header);
  if (64 + encoded.byteLength > dataOffset) throw new Error("test header grew past the data offset");
  const out = bytes.slice();
  out.fill(0, 64, dataOffset);
  out.set(encoded, 64);
  new DataView(out.buffer).setBigUint64(16, BigInt(encoded.byteLength), true);
  out.set(createHash("sha256").update(encoded).digest(), 32);
  return out;
}

/** The same file around other header bytes (any MessagePack, valid or not), re-signed. */
export function withRawHeader(bytes: Uint8Array, edit: (raw: Buffer) => Uint8Array): Uint8Array {
  return signB158Bytes(edit(Buffer.from(bytes.subarray(64, 64 + u64(bytes, 16)))), bytes.subarray(u64(bytes, 24)));
}

type Entry = Record<string, unknown>;
const tensors = (h: Record<string, unknown>) => h.tensors as Entry[];
const firstOf = (h: Record<string, unknown>, layout: string) => tensors(h).find((t) => t.layout === layout)!;
const firstPlain = (h: Record<string, unknown>) => tensors(h).find((t) => t.scale === undefined && t.group_size === undefined)!;
/** The header map of 6 keys made 7 by appending `tail` (one more key and value). */
const appendKey = (tail: number[]) => (raw: Buffer) => Buffer.concat([Buffer.from([0x87]), raw.subarray(1), Buffer.from(tail)]);
const str = (s: string) => [0xa0 | s.length, ...Buffer.from(s)];
const setU64 = (at: number, value: bigint) => (good: Uint8Array) => {
  const b = good.slice();
  new DataView(b.buffer).setBigUint64(at, value, true);
  return b;
};

/** Refused when the file is opened (docs/FORMAT.md §2.1), made from a good tq2_0 file of the example model. */
export const OPEN_DAMAGE: readonly Damage[] = [
  ["not a .b158 file", (good) => new TextEncoder().encode("GGUF and some more bytes to pass the preamble length check.........."), "E_B158_MAGIC"],
  ["bad magic byte", (good) => Object.assign(good.slice(), { 3: 0x39 }), "E_B158_MAGIC"],
  ["truncated inside the preamble", (good) => good.slice(0, 40), "E_B158_TRUNCATED"],
  ["truncated inside a payload", (good) => good.slice(0, good.length - 100), "E_B158_TRUNCATED"],
  ["unknown major version", (good) => { const b = good.slice(); new DataView(b.buffer).setUint16(8, 2, true); return b; }, "E_B158_VERSION"],
  ["reserved flags set", (good) => { const b = good.slice(); new DataView(b.buffer).setUint32(12, 1, true); return b; }, "E_B158_VERSION"],
  ["header length lies (beyond the file)", (good) => { const b = good.slice(); new DataView(b.buffer).setBigUint64(16, 2n ** 40n, true); return b; }, "E_B158_HEADER"],
  ["header length lies (shorter)", (good) => { const b = good.slice(); new DataView(b.buffer).setBigUint64(16, BigInt(u64(good, 16) - 10), true); return b; }, "E_B158_HEADER"],
  ["a flipped header byte", (good) => Object.assign(good.slice(), { 200: good[200]! ^ 0x40 }), "E_B158_HEADER"],
  ["data offset not page-aligned", (good) => { const b = good.slice(); new DataView(b.buffer).setBigUint64(24, BigInt(u64(good, 24) + 64), true); return b; }, "E_B158_OFFSETS"],
  ["nonzero padding after the header", (good) => Object.assign(good.slice(), { [u64(good, 24) - 1]: 7 }), "E_B158_HEADER"],
  // the header map of 6 keys made 7, the 7th "format" again: two readers could keep either value
  ["a key twice in one header map", (good) => withRawHeader(good, (raw) => Buffer.concat([Buffer.from([0x87]), raw.subarray(1), Buffer.from([0xa6, ...Buffer.from("format"), 0xa4, ...Buffer.from("b158")])])), "E_B158_HEADER"],
  ["an extension type in the header (a timestamp)", (good) => withRawHeader(good, (raw) => Buffer.concat([Buffer.from([0x87]), raw.subarray(1), Buffer.from([0xa1, 0x7a, 0xd6, 0xff, 0, 0, 0, 1])])), "E_B158_HEADER"],
  ["schema violation (format is not b158)", (good) => withHeader(good, (h) => { h.format = "gguf"; }), "E_B158_SCHEMA"],
  ["schema violation (unknown layout)", (good) => withHeader(good, (h) => { (h.tensors as Record<string, unknown>[])[1]!.layout = "q4_k"; }), "E_B158_SCHEMA"],
  ["binary where the schema has a map (model.config)", (good) => withHeader(good, (h) => { (h.model as Record<string, unknown>).config = Uint8Array.from([0x7b, 0x7d]); }), "E_B158_SCHEMA"],
  ["files is not a map", (good) => withHeader(good, (h) => { h.files = "config.json"; }), "E_B158_SCHEMA"],
  ["an integer field above 2^53 - 1", (good) => withHeader(good, (h) => { (h.tensors as Record<string, unknown>[])[1]!.offset = 2 ** 60; }), "E_B158_SCHEMA"],
  ["a ternary shape with a 0", (good) => withHeader(good, (h) => { (h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!.shape = [0, 256]; }), "E_B158_SCHEMA"],
  ["i2_s block 64 with variant x86", (good) => withHeader(good, (h) => { Object.assign((h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!, { layout: "i2_s", params: { block_size: 64, variant: "x86" } }); }), "E_B158_SCHEMA"],
  ["i2_s block 64 with variant arm passes the schema (then the length is wrong)", (good) => withHeader(good, (h) => { Object.assign((h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!, { layout: "i2_s", params: { block_size: 64, variant: "arm" } }); }), "E_B158_LAYOUT"],
  ["tl2 with bm 64", (good) => withHeader(good, (h) => { Object.assign((h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!, { layout: "tl2", params: { BM: 64, BK: 96, bm: 64, tiling_source: "computed" } }); }), "E_B158_SCHEMA"],
  ["tl1 with bm 64 passes the schema (then the length is wrong)", (good) => withHeader(good, (h) => { Object.assign((h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!, { layout: "tl1", params: { BM: 64, BK: 64, bm: 64, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["payload length disagrees with the layout", (good) => withHeader(good, (h) => { const t = (h.tensors as Record<string, unknown>[]).find((x) => x.layout === "tq2_0")!; t.length = (t.length as number) - 66; }), "E_B158_LAYOUT"],
  ["a payload at a gapped offset", (good) => withHeader(good, (h) => { const ts = h.tensors as Record<string, unknown>[]; ts[1]!.offset = (ts[1]!.offset as number) + 64; }), "E_B158_OFFSETS"],
  ["bytes trail the last payload", (good) => { const b = new Uint8Array(good.length + 5); b.set(good); return b; }, "E_B158_OFFSETS"],
  // added with the reader written from the documents: one case per remaining rule of §2.1
  ["a 5-byte file", () => Uint8Array.from([0x89, 0x42, 0x31, 0x35, 0x38]), "E_B158_TRUNCATED"],
  ["header length 0", setU64(16, 0n), "E_B158_HEADER"],
  ["data offset inside the header", setU64(24, 0n), "E_B158_OFFSETS"],
  ["data offset past the end of the file", (good) => setU64(24, BigInt(Math.ceil((good.length + 1) / 4096) * 4096))(good), "E_B158_TRUNCATED"],
  ["a key that is an integer", (good) => withRawHeader(good, appendKey([0x07, 0x01])), "E_B158_HEADER"],
  ["the byte 0xc1", (good) => withRawHeader(good, appendKey([...str("z"), 0xc1])), "E_B158_HEADER"],
  ["a string that is not UTF-8", (good) => withRawHeader(good, appendKey([...str("z"), 0xa2, 0xc3, 0x28])), "E_B158_HEADER"],
  ["a byte after the header's value", (good) => withRawHeader(good, (raw) => Buffer.concat([raw, Buffer.from([0xc0])])), "E_B158_HEADER"],
  ["arrays nested 65 levels", (good) => withRawHeader(good, appendKey([...str("z"), ...Array(64).fill(0x91), 0x01])), "E_B158_HEADER"],
  ["arrays nested 64 levels open (then the schema is fine: unknown keys are allowed)", (good) => withRawHeader(good, appendKey([...str("z"), ...Array(63).fill(0x91), 0x01])), null],
  ["the header is not a map", (good) => withRawHeader(good, () => Buffer.from([0x90])), "E_B158_SCHEMA"],
  ["a file that is not bytes", (good) => withHeader(good, (h) => { (h.files as Record<string, unknown>)["config.json"] = "{}"; }), "E_B158_SCHEMA"],
  ["bytes in a tensor's params", (good) => withHeader(good, (h) => { firstOf(h, "tq2_0").params = Uint8Array.from([1]); }), "E_B158_SCHEMA"],
  ["a tensor name twice", (good) => withHeader(good, (h) => { tensors(h)[1]!.name = tensors(h)[0]!.name; }), "E_B158_SCHEMA"],
  ["a scale on a plain array", (good) => withHeader(good, (h) => { firstPlain(h).scale = 1; }), "E_B158_SCHEMA"],
  ["a ternary tensor with three dimensions", (good) => withHeader(good, (h) => { firstOf(h, "tq2_0").shape = [1, 256, 256]; }), "E_B158_SCHEMA"],
  ["tq2_0 with K % 256 != 0", (good) => withHeader(good, (h) => { const t = firstOf(h, "tq2_0"); t.shape = [(t.shape as number[])[0]! * 2, 128]; }), "E_B158_LAYOUT"],
  ["tl1 with BK % (256/bm) != 0", (good) => withHeader(good, (h) => { Object.assign(firstOf(h, "tq2_0"), { layout: "tl1", params: { BM: 32, BK: 4, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["tl1 with M % BM != 0", (good) => withHeader(good, (h) => { Object.assign(firstOf(h, "tq2_0"), { layout: "tl1", params: { BM: 96, BK: 64, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["tl2 with BK % 24 != 0", (good) => withHeader(good, (h) => { Object.assign(firstOf(h, "tq2_0"), { layout: "tl2", params: { BM: 32, BK: 64, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["tl2 with a tail that is not a multiple of 32 (K 512, BK 24: 8)", (good) => withHeader(good, (h) => { Object.assign(firstOf(h, "tq2_0"), { layout: "tl2", params: { BM: 32, BK: 24, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["tl2 with no three-weight columns (K 256, BK 264: the tail is all)", (good) => withHeader(good, (h) => { Object.assign(firstOf(h, "tq2_0"), { layout: "tl2", shape: [256, 256], params: { BM: 32, BK: 264, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["tl2 with K < 256", (good) => withHeader(good, (h) => { const t = firstOf(h, "tq2_0"); Object.assign(t, { layout: "tl2", shape: [(t.shape as number[])[0]! * 2, 128], params: { BM: 32, BK: 96, bm: 32, tiling_source: "computed" } }); }), "E_B158_LAYOUT"],
  ["a plain array whose length exceeds 2^53 - 1", (good) => withHeader(good, (h) => { firstPlain(h).shape = [2 ** 40, 2 ** 20]; }), "E_B158_LAYOUT"],
  ["a plain array of 2^40 x 2^20 x 0 elements is empty, exactly (then its length is wrong)", (good) => withHeader(good, (h) => { firstPlain(h).shape = [2 ** 40, 2 ** 20, 0]; }), "E_B158_LAYOUT"],
  ["a plain array of the wrong length", (good) => withHeader(good, (h) => { const t = firstPlain(h); t.length = (t.length as number) + 4; }), "E_B158_LAYOUT"],
  ["two payloads swapped in the header (out of data order)", (good) => withHeader(good, (h) => { const ts = tensors(h); [ts[0], ts[1]] = [ts[1]!, ts[0]!]; }), "E_B158_OFFSETS"],
  ["payloads overlap", (good) => withHeader(good, (h) => { tensors(h)[1]!.offset = 0; }), "E_B158_OFFSETS"],
  ["a NaN scale (numbers in the tables are finite)", (good) => withHeader(good, (h) => { firstOf(h, "tq2_0").scale = Number.NaN; }), "E_B158_SCHEMA"],
  ["an infinite scale", (good) => withHeader(good, (h) => { firstOf(h, "tq2_0").scale = Number.POSITIVE_INFINITY; }), "E_B158_SCHEMA"],
  ["a negative offset", (good) => withHeader(good, (h) => { tensors(h)[0]!.offset = -64; }), "E_B158_SCHEMA"],
  ["an offset of 64.5", (good) => withHeader(good, (h) => { tensors(h)[1]!.offset = 64.5; }), "E_B158_SCHEMA"],
  ["an offset of 64.0 as float 64 is the integer 64 (then it is not where the payload is)", (good) => withRawHeader(withHeader(good, (h) => { tensors(h)[1]!.offset = 0.5; }), (raw) => { const at = raw.indexOf(Buffer.from([0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0])); const out = Buffer.from(raw); out.set([0xcb, 0x40, 0x50, 0, 0, 0, 0, 0, 0], at); return out; }), "E_B158_OFFSETS"],
  ["a repeated name after a tensor whose layout is wrong (names are header validation, checked first)", (good) => withHeader(good, (h) => { const ts = tensors(h); ts[0]!.length = (ts[0]!.length as number) + 1; ts[ts.length - 1]!.name = ts[ts.length - 2]!.name; }), "E_B158_SCHEMA"],
  ["an unknown key in a tensor's params is ignored", (good) => withHeader(good, (h) => { (firstOf(h, "tq2_0").params as Record<string, unknown>).future = [1]; }), null],
  ["provenance.source.commit in capitals", (good) => withHeader(good, (h) => { ((h.provenance as Entry).source as Entry).commit = "A".repeat(40); }), "E_B158_SCHEMA"],
  ["provenance.options.i2s_variant unknown", (good) => withHeader(good, (h) => { ((h.provenance as Entry).options as Entry).i2s_variant = "riscv"; }), "E_B158_SCHEMA"],
  ["a file name that climbs out (../)", (good) => withHeader(good, (h) => { (h.files as Record<string, unknown>)["../config.json"] = Uint8Array.from([0x7b, 0x7d]); }), "E_B158_SCHEMA"],
  ["a file name starting with a dot", (good) => withHeader(good, (h) => { (h.files as Record<string, unknown>)[".env"] = Uint8Array.from([0x7b, 0x7d]); }), "E_B158_SCHEMA"],
  ["a file name with two slashes", (good) => withHeader(good, (h) => { (h.files as Record<string, unknown>)["a/b/config.json"] = Uint8Array.from([0x7b, 0x7d]); }), "E_B158_SCHEMA"],
  ["a file name with one slash (1.1, a Pooling module's config)", (good) => withHeader(good, (h) => { (h.files as Record<string, unknown>)["1_Pooling/config.json"] = Uint8Array.from([0x7b, 0x7d]); }), null],
];

/** Refused when a group_size file is opened: edits of the entry of one q2_0 tensor with group_size 128 (K = 256). */
export const GROUP_DAMAGE: readonly (readonly [name: string, change: (t: Record<string, unknown>) => void, code: ErrorCode])[] = [
  ["group_size on a per-tensor layout", (t) => { t.layout = "i2_s"; t.params = { block_size: 128, variant: "x86" }; }, "E_B158_SCHEMA"],
  ["both scale and group_size", (t) => { t.scale = 0.5; }, "E_B158_SCHEMA"],
  ["neither scale nor group_size", (t) => { delete t.group_size; }, "E_B158_SCHEMA"],
  ["group_size not a multiple of the block", (t) => { t.group_size = 96; }, "E_B158_LAYOUT"],
  ["group_size that does not divide K", (t) => { t.group_size = 192; }, "E_B158_LAYOUT"],
  ["group_size on a plain array", (t) => { t.layout = "f16"; t.params = {}; }, "E_B158_SCHEMA"],
];
