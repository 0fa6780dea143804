import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { B158Error, ERROR_CODES, type ErrorCode } from "../../src/errors.js";
import { openGguf, openGgufFile, type GgufFile } from "../../src/formats/gguf/read.js";
import { ggmlType } from "../../src/formats/gguf/spec.js";
import { layoutGguf } from "../../src/formats/gguf/write.js";
import { memorySource } from "../../src/io/byte-source.js";
import {
  BITNET_KVS,
  buildGguf,
  kv,
  layoutGgufBytes,
  tensorBytes,
  tl2CodeBytes,
  VALID_KVS,
  VALID_TENSORS,
  validGguf,
  type GgufBuild,
  type TensorSpec,
} from "../support/build-gguf.js";
import { countingSource } from "../support/counting-source.js";
import { expectB158Error } from "../support/expect-error.js";

const FILE = "hostile.gguf";
const open = (bytes: Uint8Array): Promise<GgufFile> => openGguf(memorySource(FILE, bytes));

/** The valid file with some fields changed. */
const valid = (changes: GgufBuild = {}): Uint8Array => buildGguf({ kvs: VALID_KVS, tensors: VALID_TENSORS, ...changes });
/** The valid metadata plus one more entry, no tensors. */
const withKv = (...extra: GgufBuild["kvs"] & object): Uint8Array => buildGguf({ kvs: [...VALID_KVS, ...extra] });
/** The valid metadata with these tensors. */
const withTensors = (...tensors: TensorSpec[]): Uint8Array => buildGguf({ kvs: VALID_KVS, tensors });
/** A bitnet.cpp file with these tensors. */
const bitnet = (...tensors: TensorSpec[]): Uint8Array => buildGguf({ kvs: BITNET_KVS, tensors });
const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const f32 = (name: string, ne: (number | bigint)[] = [4], extra: Partial<TensorSpec> = {}): TensorSpec => ({ name, ne, type: "F32", ...extra });
const scaleOf = (name: string, extra: Partial<TensorSpec> = {}): TensorSpec => ({ name: `${name}_scale`, ne: [], type: "F32", ...extra });
/** A header whose metadata ends right where a value (or key) is cut: no tensors, so nothing follows. */
const cut = (bytes: Uint8Array, drop: number): Uint8Array => bytes.slice(0, bytes.byteLength - drop);

/**
 * One entry per rule a file can break: the bytes, the exact code, and what the message must name
 * besides the file (a key, a tensor, a word).
 */
const CASES: [rule: string, build: () => Uint8Array, code: ErrorCode, mentions?: readonly string[]][] = [
  // preamble
  ["empty file", () => new Uint8Array(0), "E_GGUF_MAGIC"],
  ["three bytes, shorter than the magic", () => Uint8Array.of(0x47, 0x47, 0x55), "E_GGUF_MAGIC"],
  ["bad magic GGML", () => valid({ magic: [0x47, 0x47, 0x4d, 0x4c] }), "E_GGUF_MAGIC"],
  ["lower-case magic gguf", () => valid({ magic: [0x67, 0x67, 0x75, 0x66] }), "E_GGUF_MAGIC"],
  ["a safetensors file (length prefix, then JSON)", () => Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]), "E_GGUF_MAGIC"],
  ["magic and half a version", () => Uint8Array.of(0x47, 0x47, 0x55, 0x46, 3, 0), "E_GGUF_TRUNCATED"],
  ["magic and version, no tensor count", () => Uint8Array.of(0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0), "E_GGUF_TRUNCATED"],
  ["no metadata count", () => buildGguf({ truncate: 4 + 4 + 8 + 3 }), "E_GGUF_TRUNCATED"],
  ["version 0", () => valid({ version: 0 }), "E_GGUF_VERSION", ["version 0"]],
  ["version 1 (u32 counts, never supported by gguf.cpp)", () => valid({ version: 1 }), "E_GGUF_VERSION", ["version 1"]],
  ["version 4", () => valid({ version: 4 }), "E_GGUF_VERSION", ["version 4"]],
  ["version 0xffffffff", () => valid({ version: 0xffffffff }), "E_GGUF_VERSION"],
  ["big-endian file (version bytes reversed)", () => valid({ versionBytes: [0, 0, 0, 3] }), "E_GGUF_VERSION", ["big-endian"]],
  ["big-endian version 2", () => valid({ versionBytes: [0, 0, 0, 2] }), "E_GGUF_VERSION", ["big-endian"]],

  // counts: checked against the bytes left before anything is allocated
  ["tensor count -1", () => valid({ tensorCount: -1n }), "E_GGUF_HEADER", ["tensor count"]],
  ["tensor count 2^62", () => valid({ tensorCount: 2n ** 62n }), "E_GGUF_HEADER", ["tensor count"]],
  ["tensor count 2^63 - 1", () => valid({ tensorCount: 2n ** 63n - 1n }), "E_GGUF_HEADER", ["tensor count"]],
  ["tensor count 10^6 in a small file", () => valid({ tensorCount: 1_000_000 }), "E_GGUF_HEADER", ["tensor count"]],
  ["metadata count -1", () => valid({ kvCount: -1n }), "E_GGUF_HEADER", ["metadata count"]],
  ["metadata count 2^62", () => valid({ kvCount: 2n ** 62n }), "E_GGUF_HEADER", ["metadata count"]],
  ["metadata count one more than the entries present", () => buildGguf({ kvs: VALID_KVS, kvCount: VALID_KVS.length + 1 }), "E_GGUF_TRUNCATED"],

  // keys
  ["key length larger than the file", () => withKv({ key: "general.x", keyLength: 1_000_000, type: "uint8", value: 1 }), "E_GGUF_HEADER", ["metadata key 8"]],
  ["key length 2^64 - 1 (negative as int64)", () => withKv({ key: "general.x", keyLength: -1n, type: "uint8", value: 1 }), "E_GGUF_HEADER", ["metadata key 8"]],
  ["empty key", () => withKv({ key: "", type: "uint8", value: 1 }), "E_GGUF_HEADER", ["entry 8", "empty key"]],
  ["duplicate key", () => withKv(kv.str("general.name", "again")), "E_GGUF_HEADER", ['"general.name"']],
  ["invalid UTF-8 key", () => withKv({ key: Uint8Array.of(0x67, 0xff, 0xfe), type: "uint8", value: 1 }), "E_GGUF_HEADER", ["UTF-8"]],
  ["overlong UTF-8 key (0xc0 0xae for '.')", () => withKv({ key: Uint8Array.of(0x61, 0xc0, 0xae, 0x62), type: "uint8", value: 1 }), "E_GGUF_HEADER", ["UTF-8"]],

  // values
  ["unknown value type 13", () => withKv(kv.of("general.x", 13, 0)), "E_GGUF_HEADER", ['"general.x"', "13"]],
  ["value type 0xffffffff", () => withKv({ key: "general.x", type: 0xffffffff, raw: [0, 0, 0, 0] }), "E_GGUF_HEADER", ['"general.x"']],
  ["array of arrays", () => withKv({ key: "general.nested", type: "array", itemType: "array", raw: [...le32(9), ...le32(0), 0, 0, 0, 0, 0, 0, 0, 0] }), "E_GGUF_HEADER", ['"general.nested"', "arrays"]],
  ["array of unknown type 42", () => withKv(kv.arr("general.odd", 42, [])), "E_GGUF_HEADER", ['"general.odd"', "42"]],
  ["array length 2^62", () => withKv({ ...kv.arr("general.big", "uint8", [1, 2]), arrayLength: 2n ** 62n }), "E_GGUF_HEADER", ['"general.big"']],
  ["array length -1", () => withKv({ ...kv.arr("general.big", "uint32", [1]), arrayLength: -1n }), "E_GGUF_HEADER", ['"general.big"']],
  ["array of strings claiming more strings than bytes", () => withKv({ ...kv.arr("general.words", "string", ["a"]), arrayLength: 1000 }), "E_GGUF_HEADER", ['"general.words"']],
  ["bool value 2", () => withKv(kv.of("general.flag", "bool", 2)), "E_GGUF_HEADER", ['"general.flag"']],
  ["bool 255 inside an array", () => withKv(kv.arr("general.flags", "bool", [1, 0, 255])), "E_GGUF_HEADER", ['"general.flags"']],
  ["invalid UTF-8 string value", () => withKv(kv.str("general.bad", Uint8Array.of(0x61, 0xed, 0xa0, 0x80))), "E_GGUF_HEADER", ['"general.bad"', "UTF-8"]],
  ["string value length beyond the file", () => withKv({ key: "general.s", type: "string", raw: [...le32(0x7fffffff), 0, 0, 0, 0, 0x61] }), "E_GGUF_HEADER", ['"general.s"']],
  ["string value cut mid-way (the file ends inside it)", () => cut(withKv(kv.str("general.z", "a long string value")), 5), "E_GGUF_HEADER", ['"general.z"']],
  ["file ends inside a uint64 value", () => cut(withKv(kv.of("general.z", "uint64", 7n)), 3), "E_GGUF_TRUNCATED", ['"general.z"']],
  ["file ends between a key and its type", () => cut(withKv(kv.of("general.z", "uint8", 7)), 5), "E_GGUF_TRUNCATED", ['"general.z"']],

  // general.alignment
  ["general.alignment is a uint64", () => withKv(kv.of("general.alignment", "uint64", 32n)), "E_GGUF_HEADER", ["general.alignment", "uint32"]],
  ["general.alignment is an int32", () => withKv(kv.of("general.alignment", "int32", 32)), "E_GGUF_HEADER", ["general.alignment"]],
  ["general.alignment is a string", () => withKv(kv.str("general.alignment", "32")), "E_GGUF_HEADER", ["general.alignment"]],
  ["general.alignment is an array", () => withKv(kv.arr("general.alignment", "uint32", [32])), "E_GGUF_HEADER", ["general.alignment"]],
  ["general.alignment 0", () => withKv(kv.u32("general.alignment", 0)), "E_GGUF_HEADER", ["general.alignment", "power of 2"]],
  ["general.alignment 48 (not a power of two)", () => withKv(kv.u32("general.alignment", 48)), "E_GGUF_HEADER", ["general.alignment", "48"]],
  ["general.alignment 0xffffffff", () => withKv(kv.u32("general.alignment", 0xffffffff)), "E_GGUF_HEADER", ["general.alignment"]],

  // tensor names
  ["empty tensor name", () => withTensors(f32("")), "E_GGUF_TENSOR", ["tensor 0"]],
  ["64-byte tensor name", () => withTensors(f32("n".repeat(64))), "E_GGUF_TENSOR", ["n".repeat(64)]],
  ["62 ASCII + one 2-byte character: 64 bytes, 63 characters", () => withTensors(f32(`${"n".repeat(62)}é`)), "E_GGUF_TENSOR", ["64 bytes"]],
  ["duplicate tensor name", () => withTensors(f32("a"), f32("b"), f32("a")), "E_GGUF_TENSOR", ['"a"', "twice"]],
  ["tensor name length beyond the file", () => withTensors(f32("a", [4], { nameLength: 1n << 40n })), "E_GGUF_TENSOR", ["tensor 0 name"]],
  ["tensor name invalid UTF-8", () => withTensors({ name: Uint8Array.of(0x80), ne: [4], type: "F32" }), "E_GGUF_TENSOR", ["tensor 0 name", "UTF-8"]],

  // dimensions
  ["5 dimensions", () => withTensors(f32("t5", [1, 1, 1, 1, 1])), "E_GGUF_TENSOR", ['"t5"', "5 dimensions"]],
  ["n_dims 0xffffffff", () => withTensors(f32("tx", [4], { nDims: 0xffffffff })), "E_GGUF_TENSOR", ['"tx"']],
  ["negative ne", () => withTensors(f32("neg", [4, -2n], { bytes: 0 })), "E_GGUF_TENSOR", ['"neg"', "ne[1]"]],
  ["ne[0] of 2^60 (past 2^53)", () => withTensors(f32("huge", [2n ** 60n], { bytes: 0 })), "E_GGUF_TENSOR", ['"huge"']],
  ["ne product overflows 2^53", () => withTensors(f32("wide", [2 ** 31, 2 ** 31, 2 ** 31], { bytes: 0 })), "E_GGUF_TENSOR", ['"wide"', "elements"]],
  ["ne product overflows only at the fourth dim", () => withTensors(f32("deep", [2 ** 20, 2 ** 20, 2 ** 10, 2 ** 10], { bytes: 0 })), "E_GGUF_TENSOR", ['"deep"']],
  ["a 10^15-element F32 tensor in a small file", () => withTensors(f32("vast", [1e5, 1e5, 1e5])), "E_GGUF_TRUNCATED"],

  // types
  ["type 36 whose size fits no runtime's meaning (an I2_S without its scale slot)", () => withTensors({ name: "w", ne: [128, 4], type: "I2_S", bytes: 128 }, f32("v")), "E_GGUF_OFFSETS", ['"v"', "scale slot"]],
  ["type 44, which no runtime defines", () => withTensors(f32("w", [64], { typeId: 44 })), "E_GGUF_TENSOR", ['"w"', "44"]],
  ["type 31 (removed Q4_0_4_4)", () => withTensors(f32("w", [32], { typeId: 31 })), "E_GGUF_TENSOR", ['"w"', "31"]],
  ["type 37 in a bitnet.cpp file (I8_S, activations only)", () => bitnet(f32("w", [128, 4], { typeId: 37, bytes: 0 })), "E_GGUF_TENSOR", ['"w"', "37"]],
  ["type 42 in a bitnet.cpp file, 100 columns (no meaning fits: Q2_0 blocks of 64 or 128, TL2 needs 32 rows)", () => bitnet(f32("w", [100, 1], { typeId: 42, bytes: 36 })), "E_GGUF_TENSOR", ['"w"']],
  ["type id 0xffffffff", () => withTensors(f32("w", [4], { typeId: 0xffffffff })), "E_GGUF_TENSOR", ['"w"']],
  ["TQ2_0 with 100 columns (block of 256)", () => withTensors({ name: "tq", ne: [100, 2], type: "TQ2_0", bytes: 66 }), "E_GGUF_TENSOR", ['"tq"', "256"]],
  ["Q8_0 with 48 columns (block of 32)", () => withTensors({ name: "q", ne: [48], type: "Q8_0", bytes: 34 }), "E_GGUF_TENSOR", ['"q"']],
  ["a 0-dim Q4_0 tensor (one element, not a whole block)", () => withTensors({ name: "q0", ne: [], type: "Q4_0", bytes: 18 }), "E_GGUF_TENSOR", ['"q0"']],
  ["a 1-D I2_S tensor in a bitnet.cpp file", () => bitnet({ name: "w", ne: [256], type: "I2_S" }), "E_GGUF_TENSOR", ['"w"', "2-D"]],
  ["an I2_S tensor of 6 elements", () => bitnet({ name: "w", ne: [3, 2], type: "I2_S", bytes: 33 }), "E_GGUF_TENSOR", ['"w"']],

  // offsets (gguf.cpp: offset[i] == sum of padded sizes before it)
  ["first offset not 0", () => withTensors(f32("a", [4], { offset: 32 })), "E_GGUF_OFFSETS", ['"a"', "32"]],
  ["gap between tensors", () => withTensors(f32("a"), f32("b", [4], { offset: 64 })), "E_GGUF_OFFSETS", ['"b"', "64"]],
  ["overlapping tensors", () => withTensors(f32("a", [16]), f32("b", [4], { offset: 32 })), "E_GGUF_OFFSETS", ['"b"']],
  ["two tensors at the same offset", () => withTensors(f32("a"), f32("b", [4], { offset: 0 })), "E_GGUF_OFFSETS", ['"b"']],
  ["misaligned offset (unpadded)", () => withTensors(f32("a", [3]), f32("b", [4], { offset: 12 })), "E_GGUF_OFFSETS", ['"b"', "12"]],
  ["offsets out of order", () => withTensors(f32("a", [4], { offset: 32 }), f32("b", [4], { offset: 0 })), "E_GGUF_OFFSETS", ['"a"']],
  ["padded to 32 in a file declaring alignment 64", () => buildGguf({ kvs: [kv.u32("general.alignment", 64)], tensors: [f32("a"), f32("b")], alignment: 32 }), "E_GGUF_OFFSETS", ['"b"']],
  ["negative offset", () => withTensors(f32("a", [4], { offset: -32n })), "E_GGUF_OFFSETS", ['"a"']],
  ["offset 2^63 - 1", () => withTensors(f32("a"), f32("b", [4], { offset: 2n ** 63n - 1n })), "E_GGUF_OFFSETS", ['"b"']],

  // the data section
  ["file ends before the last tensor's data", () => valid({ truncate: layoutGgufBytes({ kvs: VALID_KVS, tensors: VALID_TENSORS }).bytes.byteLength - 31 }), "E_GGUF_TRUNCATED", ["bytes"]],
  ["file ends after the header, before the padding", () => valid({ headerOnly: true }), "E_GGUF_TRUNCATED"],
  ["file ends inside a tensor info", () => valid({ headerOnly: true, truncate: layoutGgufBytes({ kvs: VALID_KVS, tensors: VALID_TENSORS, headerOnly: true }).bytes.byteLength - 4 }), "E_GGUF_TRUNCATED", ["tensor info 2"]],
  ["data section one byte short", () => withTensors(f32("a", [8]), f32("b", [8], { bytes: 32 })).slice(0, -1), "E_GGUF_TRUNCATED"],

  // bitnet.cpp's TL1/TL2: the f32 scale sits in a 32-byte slot after the codes, which ggml_nbytes counts; no scale tensor
  ["TL1 written the old b158 way: codes, then a 0-dim <name>_scale tensor", () => bitnet({ name: "blk.0.ffn_up.weight", ne: [128, 32], type: "TL1", bytes: 1024 }, scaleOf("blk.0.ffn_up.weight")), "E_GGUF_TENSOR", ['"blk.0.ffn_up.weight_scale"', "n_dims"]],
  ["TL1 without its scale slot: the next tensor right after the codes", () => bitnet({ name: "w", ne: [128, 32], type: "TL1", bytes: 1024 }, f32("v")), "E_GGUF_OFFSETS", ['"v"', "scale slot"]],
  ["TL1 with its scale listed as a 1-dim tensor after the slot", () => bitnet({ name: "w", ne: [128, 32], type: "TL1" }, scaleOf("w", { ne: [1] }), f32("v", [4], { offset: 1056 })), "E_GGUF_OFFSETS", ['"v"']],
  ["TL2 whose scale slot is cut off by the end of the file", () => bitnet({ name: "w", ne: [256, 32], type: "TL2", bytes: tl2CodeBytes(256, 32) }), "E_GGUF_TRUNCATED"],
  ["TL1 with 4 rows (its kernels tile rows by 32)", () => bitnet({ name: "w", ne: [128, 4], type: "TL1" }), "E_GGUF_TENSOR", ['"w"', "32"]],
  ["TL2 with rows of 100 weights (its size formula needs 256)", () => bitnet({ name: "w", ne: [100, 32], type: "TL2", bytes: 800 }), "E_GGUF_TENSOR", ['"w"', "256"]],
];

describe("malformed GGUF files: one code per broken rule", () => {
  it("the valid baseline reads, so each case below fails for its own reason", async () => {
    const built = layoutGgufBytes({ kvs: VALID_KVS, tensors: VALID_TENSORS });
    const gguf = await open(built.bytes);
    expect(gguf.version).toBe(3);
    expect(gguf.alignment).toBe(32);
    expect(gguf.runtime).toBe("llama.cpp");
    expect(gguf.dataOffset).toBe(built.dataOffset);
    expect(gguf.kvs.map((e) => e.key)).toEqual(VALID_KVS.map((e) => e.key));
    expect(gguf.scalar("general.name")).toBe("tiny");
    expect(gguf.scalar("general.quantized")).toBe(true);
    expect(gguf.scalar("general.size")).toBe(123n);
    expect(gguf.metadata.get("tokenizer.ggml.tokens")).toEqual({ type: "array", itemType: "string", value: ["<s>", "</s>", "a"] });
    expect(gguf.tensors.map((t) => [t.name, t.type.name, t.offset, t.length])).toEqual([
      ["token_embd.weight", "F32", 0, 32],
      ["blk.0.attn_q.weight", "Q8_0", 32, 68],
      ["output_norm.scale", "F16", 128, 2],
    ]);
    expect(gguf.tensor("output_norm.scale").ne).toEqual([]);
    expect(await gguf.readTensor("blk.0.attn_q.weight")).toEqual(built.bytes.subarray(built.dataOffset + 32, built.dataOffset + 100));
    await expectB158Error(() => gguf.tensor("missing"), "E_TENSOR_MISSING", FILE);
  });

  it(`has at least 40 distinct cases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map(([rule]) => rule)).size).toBe(CASES.length);
    const bytes = CASES.map(([, build]) => Buffer.from(build()).toString("base64"));
    expect(new Set(bytes).size, "no two cases build the same bytes").toBe(CASES.length);
  });

  it.each(CASES.map(([rule, build, code, mentions]) => [rule, code, build, mentions ?? []] as const))("%s -> %s", async (_rule, code, build, mentions) => {
    const bytes = build();
    const source = countingSource(memorySource(FILE, bytes));
    const started = Date.now();
    const error = await expectB158Error(openGguf(source), code, FILE);
    for (const word of mentions) expect(error.message, `the message names ${word}`).toContain(word);
    expect(error.details.file).toBe(FILE);
    // whatever the header claims, nothing is read (or allocated for reading) beyond the file, and it fails fast
    expect(source.largestRead).toBeLessThanOrEqual(bytes.byteLength);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("the catalogue exercises every code the reader can raise", () => {
    const used = new Set(CASES.map(([, , code]) => code));
    const reader: ErrorCode[] = ["E_GGUF_MAGIC", "E_GGUF_VERSION", "E_GGUF_TRUNCATED", "E_GGUF_HEADER", "E_GGUF_TENSOR", "E_GGUF_OFFSETS"];
    expect(reader.every((code) => code in ERROR_CODES)).toBe(true);
    expect(reader.filter((code) => !used.has(code))).toEqual([]);
  });

  it("an id unknown to the file's runtime names its other meanings, and why they do not fit either", async () => {
    const error = await expectB158Error(open(withTensors({ name: "w", ne: [100, 4], type: "I2_S", bytes: 132 })), "E_GGUF_TENSOR", FILE);
    expect(error.message).toContain("unknown to mainline llama.cpp");
    expect(error.hint).toContain("bitnet.cpp 2024-2025 fork: I2_S");
    expect(error.hint).toContain("do not fit the file either");
    expect(error.details).toMatchObject({ tensor: "w", type: 36 });
  });

  it("tensor errors carry the tensor, metadata errors the key, in details", async () => {
    expect((await expectB158Error(open(withTensors(f32("a"), f32("a"))), "E_GGUF_TENSOR")).details.tensor).toBe("a");
    expect((await expectB158Error(open(withKv(kv.str("general.name", "x"))), "E_GGUF_HEADER")).details.key).toBe("general.name");
    expect((await expectB158Error(open(withTensors(f32("a", [4], { offset: 32 }))), "E_GGUF_OFFSETS")).details).toMatchObject({ tensor: "a", offset: 32, expected: 0 });
  });

  it("a hostile header in a real file names the path, reads no more than the file and closes it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "b158-gguf-"));
    try {
      const cases: [Uint8Array, ErrorCode][] = [
        [valid({ tensorCount: 2n ** 62n }), "E_GGUF_HEADER"],
        [withTensors(f32("vast", [1e5, 1e5, 1e5])), "E_GGUF_TRUNCATED"],
        [valid({ versionBytes: [0, 0, 0, 3] }), "E_GGUF_VERSION"],
        [new Uint8Array(0), "E_GGUF_MAGIC"],
      ];
      for (const [i, [bytes, code]] of cases.entries()) {
        const path = join(dir, `bad-${i}.gguf`);
        await writeFile(path, bytes);
        await expectB158Error(openGgufFile(path), code, path);
      }
      const path = join(dir, "good.gguf");
      await writeFile(path, validGguf());
      const gguf = await openGgufFile(path);
      expect(gguf.name).toBe(path);
      expect((await gguf.readTensor("token_embd.weight")).byteLength).toBe(32);
      await gguf.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("unusual but valid GGUF files are accepted", () => {
  it("a bitnet.cpp I2_S file (architecture bitnet-b1.58) uses the fork's type table", async () => {
    const built = layoutGgufBytes({ kvs: [kv.str("general.architecture", "bitnet-b1.58")], tensors: [{ name: "blk.0.ffn_up.weight", ne: [128, 4], type: "I2_S" }, f32("output_norm.weight", [128])] });
    const gguf = await open(built.bytes);
    expect(gguf.runtime).toBe("bitnet.cpp");
    const w = gguf.tensor("blk.0.ffn_up.weight");
    expect(w.type.name).toBe("I2_S");
    expect(w.length).toBe((128 * 4) / 4 + 32);
    expect(gguf.tensor("output_norm.weight").offset).toBe(160);
    expect(await gguf.readTensor("output_norm.weight")).toEqual(built.bytes.subarray(built.dataOffset + 160, built.dataOffset + 160 + 512));
  });

  it("I2_S ids are read as bitnet.cpp's by their sizes, whatever general.file_type says; a file type never picks the table", async () => {
    for (const kvs of [[kv.str("general.architecture", "bitnet-25")], [kv.str("general.architecture", "llama"), kv.u32("general.file_type", 38)], [kv.u32("general.file_type", 41)], []]) {
      const gguf = await open(buildGguf({ kvs, tensors: [{ name: "w", ne: [128, 4], type: "I2_S" }] }));
      expect(gguf.runtime).toBe("bitnet.cpp");
    }
    // 40 is I2_S in the 2024 fork, Q1_0 in mainline: a TQ2_0 file that says 40 is still read with mainline's table
    for (const fileType of [38, 39, 40, 41, 43]) {
      const gguf = await open(buildGguf({ kvs: [kv.str("general.architecture", "bitnet"), kv.u32("general.file_type", fileType)], tensors: [{ name: "w", ne: [256, 2], type: "TQ2_0" }] }));
      expect(gguf.runtime, `file type ${fileType}`).toBe("llama.cpp");
      expect(gguf.types.table).toBe("llama.cpp");
    }
  });

  it("TL1 and TL2 with bitnet.cpp's 32-byte scale slot after their codes are accepted, and no scale tensor", async () => {
    const gguf = await open(bitnet({ name: "a", ne: [128, 32], type: "TL1" }, { name: "b", ne: [256, 32], type: "TL2" }, f32("c")));
    const tl2 = Math.ceil(tl2CodeBytes(256, 32) / 32) * 32 + 32;
    expect(tl2).toBe(tensorBytes("TL2", [256, 32]));
    expect(gguf.tensors.map((t) => [t.name, t.type.name, t.offset, t.length])).toEqual([
      ["a", "TL1", 0, 128 * 32 / 4 + 32],
      ["b", "TL2", 1056, tl2],
      ["c", "F32", 1056 + tl2, 16],
    ]);
    expect(gguf.types.table).toBe("bitnet.cpp-2024");
  });

  it("MXFP4 (id 39) is accepted in a mainline file", async () => {
    const gguf = await open(withTensors({ name: "blk.0.ffn_down_exps.weight", ne: [64, 2], type: "MXFP4" }));
    expect(gguf.runtime).toBe("llama.cpp");
    const t = gguf.tensor("blk.0.ffn_down_exps.weight");
    expect(t.type.name).toBe("MXFP4");
    expect(t.length).toBe(2 * 2 * 17);
  });

  it("general.alignment 64 is honored for the data section and every offset", async () => {
    const built = layoutGgufBytes({ kvs: [kv.u32("general.alignment", 64), kv.str("general.architecture", "llama")], tensors: [f32("a", [3]), f32("b", [20]), f32("c", [1])] });
    const gguf = await open(built.bytes);
    expect(gguf.alignment).toBe(64);
    expect(gguf.dataOffset % 64).toBe(0);
    expect(gguf.dataOffset).toBe(built.dataOffset);
    expect(gguf.tensors.map((t) => t.offset)).toEqual([0, 64, 192]);
    expect(await gguf.readTensor("c")).toEqual(built.bytes.subarray(built.dataOffset + 192, built.dataOffset + 196));
  });

  it("alignment 1 packs tensors with no padding", async () => {
    const gguf = await open(buildGguf({ kvs: [kv.u32("general.alignment", 1)], tensors: [f32("a", [3]), { name: "b", ne: [5], type: "F16" }, f32("c", [1])] }));
    expect(gguf.tensors.map((t) => t.offset)).toEqual([0, 12, 22]);
  });

  it("a file with metadata and no tensors is accepted, its data section empty", async () => {
    const bytes = buildGguf({ kvs: VALID_KVS });
    const gguf = await open(bytes);
    expect(gguf.tensors).toEqual([]);
    expect(gguf.dataOffset).toBe(bytes.byteLength);
  });

  it("a file with no metadata and no tensors (24 bytes) is accepted", async () => {
    const gguf = await open(buildGguf());
    expect(gguf.kvs).toEqual([]);
    expect(gguf.size).toBe(24);
  });

  it("version 2 is accepted", async () => {
    expect((await open(valid({ version: 2 }))).version).toBe(2);
  });

  it("a 63-byte tensor name, empty arrays, empty string values, every scalar type and 4 dims are accepted", async () => {
    const kvs = [
      kv.str("general.architecture", "llama"),
      kv.str("general.empty", ""),
      kv.arr("general.none", "string", []),
      kv.arr("general.nested_empty_ok", "uint8", []),
      ...(["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "uint64", "int64", "float64"] as const).map((t) => kv.of(`t.${t}`, t, t === "bool" ? false : 1)),
      { key: "t.int8_neg", type: "int8", raw: [0xff] } as const,
    ];
    const gguf = await open(buildGguf({ kvs, tensors: [f32("n".repeat(63)), f32("four", [1, 2, 1, 2]), f32("empty", [0, 4])] }));
    expect(gguf.scalar("t.int8_neg")).toBe(-1);
    expect(gguf.scalar("t.int64")).toBe(1n);
    expect(gguf.scalar("general.empty")).toBe("");
    expect(gguf.tensor("empty").length).toBe(0);
    expect(gguf.tensors).toHaveLength(3);
  });

  it("trailing bytes after the data section are tolerated, as gguf.cpp does", async () => {
    const bytes = validGguf();
    const longer = new Uint8Array(bytes.byteLength + 100);
    longer.set(bytes);
    expect((await open(longer)).tensors).toHaveLength(3);
  });

  it("the last tensor needs no padding after it", async () => {
    const built = layoutGgufBytes({ kvs: VALID_KVS, tensors: VALID_TENSORS });
    const end = built.dataOffset + built.offsets.at(-1)! + built.lengths.at(-1)!;
    expect((await open(built.bytes.slice(0, end))).tensors).toHaveLength(3);
  });

  it("what b158's own writer lays out, the reader accepts", async () => {
    const layout = layoutGguf(
      [
        { key: "general.architecture", value: { type: "string", value: "llama" } },
        { key: "general.alignment", value: { type: "uint32", value: 64 } },
      ],
      [
        { name: "a", ne: [256, 2], type: ggmlType("llama.cpp", "TQ2_0") },
        { name: "b", ne: [3], type: ggmlType("llama.cpp", "F32") },
      ],
      64,
    );
    const file = new Uint8Array(layout.fileSize);
    file.set(layout.header);
    const gguf = await open(file);
    expect(gguf.tensors.map((t) => t.offset)).toEqual(layout.offsets);
    expect(gguf.tensors.map((t) => t.length)).toEqual(layout.lengths);
    expect(gguf.dataOffset).toBe(layout.dataOffset);
  });
});

/** mulberry32: a small deterministic PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Parses or throws a B158Error; anything else (a TypeError, a RangeError, a hang) fails the test. */
async function survives(bytes: Uint8Array, label: string): Promise<"ok" | ErrorCode> {
  const source = countingSource(memorySource(FILE, bytes));
  let gguf: GgufFile;
  try {
    gguf = await openGguf(source);
  } catch (error) {
    if (!(error instanceof B158Error)) expect.fail(`${label}: threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    expect(error.message, label).toContain(FILE);
    expect(source.largestRead, label).toBeLessThanOrEqual(bytes.byteLength);
    return error.code;
  }
  // a file that opens keeps its promises: every tensor's bytes lie inside the file, contiguous and aligned
  let expected = 0;
  for (const t of gguf.tensors) {
    expect(Number.isSafeInteger(t.length) && t.length >= 0, `${label}: ${t.name} length ${t.length}`).toBe(true);
    expect(t.offset, label).toBe(expected);
    expect(t.fileOffset % gguf.alignment, label).toBe(0);
    expected = Math.ceil((t.offset + t.length) / gguf.alignment) * gguf.alignment;
    expect((await gguf.readTensor(t.name)).byteLength, label).toBe(t.length);
  }
  return "ok";
}

describe("no input crashes the reader", () => {
  const base = validGguf();
  const bitnetBase = bitnet({ name: "w", ne: [128, 32], type: "TL1" }, { name: "v", ne: [128, 2], type: "I2_S" });

  it.each([
    ["mainline", base],
    ["bitnet.cpp", bitnetBase],
  ] as const)("every truncation of a valid %s file parses or throws a B158Error", async (_name, file) => {
    const codes = new Map<string, number>();
    for (let length = 0; length < file.byteLength; length++) {
      const code = await survives(file.slice(0, length), `truncated to ${length}`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    // a file cut inside its header or data never opens
    expect(codes.get("E_GGUF_TRUNCATED")).toBeGreaterThan(0);
    expect([...codes.keys()].every((c) => c === "ok" || c.startsWith("E_GGUF_"))).toBe(true);
  });

  it.each([
    ["mainline", base, 0x5eed],
    ["bitnet.cpp", bitnetBase, 0xb17],
  ] as const)("3000 random single-byte corruptions of a valid %s file parse or throw a B158Error", async (_name, file, seed) => {
    const random = prng(seed);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const at = Math.floor(random() * file.byteLength);
      const value = Math.floor(random() * 256);
      const bytes = file.slice();
      bytes[at] = value;
      seen.add(await survives(bytes, `byte ${at} set to ${value}`));
    }
    expect(seen.size).toBeGreaterThan(3);
  });

  it("1000 random multi-byte corruptions of the header, including 0xff runs, parse or throw a B158Error", async () => {
    const random = prng(42);
    const header = layoutGgufBytes({ kvs: VALID_KVS, tensors: VALID_TENSORS }).dataOffset;
    for (let i = 0; i < 1000; i++) {
      const bytes = base.slice();
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * header);
        const run = random() < 0.3 ? 8 : 1;
        for (let k = 0; k < run && at + k < bytes.byteLength; k++) bytes[at + k] = random() < 0.5 ? 0xff : Math.floor(random() * 256);
      }
      await survives(bytes, `multi-edit ${i}`);
    }
  });
});
