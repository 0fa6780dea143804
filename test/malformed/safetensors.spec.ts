import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error, type ErrorCode } from "../../src/errors.js";
import { memorySource } from "../../src/io/byte-source.js";
import { MAX_HEADER_BYTES, readSafetensorsHeader } from "../../src/formats/safetensors/read.js";
import { buildSafetensors, validFile, validHeader, VALID_DATA_BYTES } from "../support/build-safetensors.js";
import { countingSource } from "../support/counting-source.js";
import { expectB158Error } from "../support/expect-error.js";

const FILE = "bad.safetensors";
const read = (bytes: Uint8Array) => readSafetensorsHeader(memorySource(FILE, bytes));
const data = (n = VALID_DATA_BYTES) => new Uint8Array(n);
const withEntry = (name: string, entry: unknown) => ({ ...validHeader(), [name]: entry });

/** Each case breaks one rule; named after it. */
const CASES: [string, () => Uint8Array, ErrorCode][] = [
  ["empty file", () => new Uint8Array(0), "E_SAFETENSORS_TRUNCATED"],
  ["file shorter than the length prefix", () => new Uint8Array(5), "E_SAFETENSORS_TRUNCATED"],
  ["header length 0", () => buildSafetensors({ header: "", headerLength: 0n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length beyond the file", () => buildSafetensors({ header: "{}", headerLength: 4096n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length 2^63", () => buildSafetensors({ header: "{}", headerLength: 2n ** 63n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length 2^64 - 1", () => buildSafetensors({ header: "{}", headerLength: 2n ** 64n - 1n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length just over 100 MiB", () => buildSafetensors({ header: "{}", headerLength: BigInt(MAX_HEADER_BYTES + 1) }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header is not JSON", () => buildSafetensors({ header: "{not json" }), "E_SAFETENSORS_HEADER_JSON"],
  ["header is invalid UTF-8", () => buildSafetensors({ header: Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]) }), "E_SAFETENSORS_HEADER_JSON"],
  ["header is a JSON array", () => buildSafetensors({ header: "[]" }), "E_SAFETENSORS_HEADER_JSON"],
  ["header starts with whitespace, not '{'", () => buildSafetensors({ header: " {}" }), "E_SAFETENSORS_HEADER_JSON"],
  ["header nests 100000 levels deep", () => buildSafetensors({ header: `{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}` }), "E_SAFETENSORS_HEADER_JSON"],
  ["JSON followed by garbage", () => buildSafetensors({ header: '{} {"x":1}' }), "E_SAFETENSORS_HEADER_JSON"],
  [
    "duplicate tensor names",
    () => buildSafetensors({ header: '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', data: data(2) }),
    "E_SAFETENSORS_DUPLICATE",
  ],
  ["duplicate key inside an entry", () => buildSafetensors({ header: '{"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', data: data(1) }), "E_SAFETENSORS_DUPLICATE"],
  ["entry is not an object", () => buildSafetensors({ header: withEntry("x", 42), data: data() }), "E_SAFETENSORS_ENTRY"],
  ["entry without dtype", () => buildSafetensors({ header: withEntry("x", { shape: [0], data_offsets: [20, 20] }), data: data() }), "E_SAFETENSORS_ENTRY"],
  ["entry without data_offsets", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [0] }), data: data() }), "E_SAFETENSORS_ENTRY"],
  ["entry with an unknown field", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [0], data_offsets: [20, 20], extra: 1 }), data: data() }), "E_SAFETENSORS_ENTRY"],
  ["unknown dtype", () => buildSafetensors({ header: withEntry("x", { dtype: "Q4", shape: [0], data_offsets: [20, 20] }), data: data() }), "E_SAFETENSORS_DTYPE"],
  ["lower-case dtype", () => buildSafetensors({ header: withEntry("x", { dtype: "f32", shape: [0], data_offsets: [20, 20] }), data: data() }), "E_SAFETENSORS_DTYPE"],
  ["negative dim", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [-1], data_offsets: [20, 20] }), data: data() }), "E_SAFETENSORS_SHAPE"],
  ["fractional dim", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [1.5], data_offsets: [20, 21] }), data: data(21) }), "E_SAFETENSORS_SHAPE"],
  ["dim as a string", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: ["4"], data_offsets: [20, 24] }), data: data(24) }), "E_SAFETENSORS_SHAPE"],
  ["shape is not a list", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: 4, data_offsets: [20, 24] }), data: data(24) }), "E_SAFETENSORS_SHAPE"],
  ["dim beyond 2^53", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [2 ** 53 + 2], data_offsets: [20, 20] }), data: data() }), "E_SAFETENSORS_SHAPE"],
  ["64 dims", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: Array(64).fill(1), data_offsets: [20, 21] }), data: data(21) }), "E_SAFETENSORS_SHAPE"],
  [
    "shape product overflows",
    () => buildSafetensors({ header: withEntry("x", { dtype: "F32", shape: [2 ** 31, 2 ** 31, 2 ** 31], data_offsets: [20, 20] }), data: data() }),
    "E_SAFETENSORS_OVERFLOW",
  ],
  [
    "byte size overflows after the dtype factor",
    () => buildSafetensors({ header: withEntry("x", { dtype: "F64", shape: [2 ** 26, 2 ** 26], data_offsets: [20, 20] }), data: data() }),
    "E_SAFETENSORS_OVERFLOW",
  ],
  ["byte length does not match the shape", () => buildSafetensors({ header: withEntry("x", { dtype: "F32", shape: [2], data_offsets: [20, 24] }), data: data(24) }), "E_SAFETENSORS_BYTE_LENGTH"],
  ["offsets end before they begin", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [0], data_offsets: [20, 10] }), data: data() }), "E_SAFETENSORS_OFFSETS"],
  ["offsets are not a pair", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [0], data_offsets: [20] }), data: data() }), "E_SAFETENSORS_OFFSETS"],
  ["negative offset", () => buildSafetensors({ header: withEntry("x", { dtype: "U8", shape: [0], data_offsets: [-4, -4] }), data: data() }), "E_SAFETENSORS_OFFSETS"],
  [
    "overlapping offsets",
    () => buildSafetensors({ header: { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [4], data_offsets: [2, 6] } }, data: data(6) }),
    "E_SAFETENSORS_OFFSETS",
  ],
  [
    "gap between tensors",
    () => buildSafetensors({ header: { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [4], data_offsets: [8, 12] } }, data: data(12) }),
    "E_SAFETENSORS_OFFSETS",
  ],
  ["first tensor does not start at 0", () => buildSafetensors({ header: { a: { dtype: "U8", shape: [4], data_offsets: [4, 8] } }, data: data(8) }), "E_SAFETENSORS_OFFSETS"],
  ["two tensors at the same offsets", () => buildSafetensors({ header: { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }, data: data(4) }), "E_SAFETENSORS_OFFSETS"],
  ["unindexed trailing bytes (a polyglot)", () => buildSafetensors({ header: validHeader(), data: data(VALID_DATA_BYTES + 7) }), "E_SAFETENSORS_OFFSETS"],
  ["offsets out of range (beyond the data)", () => buildSafetensors({ header: { a: { dtype: "U8", shape: [100], data_offsets: [0, 100] } }, data: data(10) }), "E_SAFETENSORS_TRUNCATED"],
  ["truncated data section", () => validFile().subarray(0, validFile().length - 3), "E_SAFETENSORS_TRUNCATED"],
  ["__metadata__ value is a number", () => buildSafetensors({ header: { ...validHeader(), __metadata__: { format: 1 } }, data: data() }), "E_SAFETENSORS_METADATA"],
  ["__metadata__ is a list", () => buildSafetensors({ header: { ...validHeader(), __metadata__: ["pt"] }, data: data() }), "E_SAFETENSORS_METADATA"],
];

describe("malformed safetensors files", () => {
  it("the valid baseline file reads", async () => {
    const header = await read(validFile());
    expect(header.tensors.map((t) => t.name)).toEqual(["w", "b"]);
  });

  it.each(CASES)("%s -> %s", async (_name, build, code) => {
    const bytes = build();
    const source = countingSource(memorySource(FILE, bytes));
    await expectB158Error(readSafetensorsHeader(source), code, FILE);
    // never reads (or allocates for) more than the file holds, whatever the header claims
    expect(source.largestRead).toBeLessThanOrEqual(bytes.byteLength);
  });

  it("every prefix of a valid file fails with a truncation code and nothing else", async () => {
    const bytes = validFile();
    for (let n = 0; n < bytes.length; n++) {
      const error = await read(bytes.subarray(0, n)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `prefix ${n}`).toBeInstanceOf(B158Error);
      expect(["E_SAFETENSORS_TRUNCATED", "E_SAFETENSORS_HEADER_SIZE"], `prefix ${n}`).toContain((error as B158Error).code);
    }
  });

  it("never crashes on arbitrary bytes: it reads or throws a B158Error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 96 }), async (bytes) => {
        await read(bytes).catch((e: unknown) => expect(e).toBeInstanceOf(B158Error));
      }),
      { numRuns: 300 },
    );
  });

  it("never crashes on random byte flips of a valid file", async () => {
    const base = validFile();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (flips) => {
        const bytes = base.slice();
        for (const [at, value] of flips) bytes[at] = value;
        await read(bytes).catch((e: unknown) => expect(e).toBeInstanceOf(B158Error));
      }),
      { numRuns: 300 },
    );
  });
});
