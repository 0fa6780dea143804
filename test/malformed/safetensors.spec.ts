import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error, ERROR_CODES, type ErrorCode } from "../../src/errors.js";
import { DTYPE_BYTES } from "../../src/formats/safetensors/dtypes.js";
import { MAX_DIMS, MAX_HEADER_BYTES, MAX_TENSORS, parseSafetensorsHeader, readSafetensorsHeader, type SafetensorsHeader } from "../../src/formats/safetensors/read.js";
import { fileSource, memorySource } from "../../src/io/byte-source.js";
import { buildSafetensors, VALID_DATA_BYTES, VALID_TENSORS, validFile, type TensorSpec } from "../support/build-safetensors.js";
import { countingSource } from "../support/counting-source.js";
import { expectB158Error } from "../support/expect-error.js";

const FILE = "hostile.safetensors";
const read = (bytes: Uint8Array) => readSafetensorsHeader(memorySource(FILE, bytes));
const raw = (header: string | Uint8Array, data = 0) => buildSafetensors({ header, data: new Uint8Array(data) });
/** The valid file plus one more tensor, laid out after the others unless it says otherwise. */
const plus = (extra: TensorSpec, trailing = 0) => buildSafetensors({ tensors: [...VALID_TENSORS, extra], metadata: { format: "pt" }, trailing });
const only = (...tensors: TensorSpec[]) => buildSafetensors({ tensors });
const u8 = (name: string, length: number, offsets: [number, number]): TensorSpec => ({ name, dtype: "U8", shape: [length], offsets });

/** One entry per rule a file can break, named after the rule; each must fail with exactly this code. */
const CASES: [rule: string, build: () => Uint8Array, code: ErrorCode][] = [
  // the 8-byte length prefix
  ["empty file", () => new Uint8Array(0), "E_SAFETENSORS_TRUNCATED"],
  ["file shorter than the 8-byte length prefix", () => new Uint8Array(7), "E_SAFETENSORS_TRUNCATED"],
  ["header length 0", () => buildSafetensors({ header: "{}", headerLength: 0n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length beyond the end of the file", () => buildSafetensors({ header: "{}", headerLength: 4096n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length one byte beyond the file", () => buildSafetensors({ header: "{}", headerLength: 3n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length 2^63", () => buildSafetensors({ header: "{}", headerLength: 2n ** 63n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length 2^64 - 1", () => buildSafetensors({ header: "{}", headerLength: 2n ** 64n - 1n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length 2^53 + 1 (past safe integers)", () => buildSafetensors({ header: "{}", headerLength: 2n ** 53n + 1n }), "E_SAFETENSORS_HEADER_SIZE"],
  ["header length just over the 100 MiB limit", () => buildSafetensors({ header: "{}", headerLength: BigInt(MAX_HEADER_BYTES + 1) }), "E_SAFETENSORS_HEADER_SIZE"],

  // the header text
  ["header is not JSON", () => raw("{not json}"), "E_SAFETENSORS_HEADER_JSON"],
  ["header is invalid UTF-8", () => raw(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), "E_SAFETENSORS_HEADER_JSON"],
  ["header has an overlong UTF-8 sequence", () => raw(Uint8Array.from([0x7b, 0x22, 0xc1, 0xbf, 0x22, 0x3a, 0x31, 0x7d])), "E_SAFETENSORS_HEADER_JSON"],
  ["header starts with a UTF-8 byte-order mark", () => raw(Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), "E_SAFETENSORS_HEADER_JSON"],
  ["header is a JSON array, not an object", () => raw("[]"), "E_SAFETENSORS_HEADER_JSON"],
  ["header is a JSON number", () => raw("42"), "E_SAFETENSORS_HEADER_JSON"],
  ["header is JSON null", () => raw("null"), "E_SAFETENSORS_HEADER_JSON"],
  ["header starts with whitespace, not '{'", () => raw(" {}"), "E_SAFETENSORS_HEADER_JSON"],
  ["header nests 100000 levels deep (a stack bomb)", () => raw(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`), "E_SAFETENSORS_HEADER_JSON"],
  ["header nests objects 1000 levels deep", () => raw(`{"a":${'{"a":'.repeat(1000)}1${"}".repeat(1000)}}`), "E_SAFETENSORS_HEADER_JSON"],
  ["JSON value followed by garbage", () => raw('{} {"x":1}'), "E_SAFETENSORS_HEADER_JSON"],
  ["header padded with NUL bytes instead of spaces", () => raw(Uint8Array.from([0x7b, 0x7d, 0, 0, 0, 0, 0, 0])), "E_SAFETENSORS_HEADER_JSON"],
  ["header length cuts the JSON short", () => buildSafetensors({ header: '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', headerLength: 20n, data: new Uint8Array(1) }), "E_SAFETENSORS_HEADER_JSON"],
  ["header uses single quotes", () => raw("{'w':1}"), "E_SAFETENSORS_HEADER_JSON"],
  ["header has a trailing comma", () => raw('{"__metadata__":{},}'), "E_SAFETENSORS_HEADER_JSON"],

  // duplicate names (two readers of one file must not disagree)
  ["duplicate tensor names", () => raw('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), "E_SAFETENSORS_DUPLICATE"],
  ["tensor names equal only after unescaping", () => raw('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0077":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), "E_SAFETENSORS_DUPLICATE"],
  ["duplicate key inside an entry", () => raw('{"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', 1), "E_SAFETENSORS_DUPLICATE"],
  ["__metadata__ given twice", () => raw('{"__metadata__":{},"__metadata__":{"format":"pt"}}'), "E_SAFETENSORS_DUPLICATE"],

  // entry fields
  ["entry is a number, not an object", () => raw('{"x":42}'), "E_SAFETENSORS_ENTRY"],
  ["entry is null", () => raw('{"x":null}'), "E_SAFETENSORS_ENTRY"],
  ["entry without dtype", () => plus({ name: "x", fields: { dtype: undefined } }), "E_SAFETENSORS_ENTRY"],
  ["entry without shape", () => plus({ name: "x", fields: { shape: undefined } }), "E_SAFETENSORS_ENTRY"],
  ["entry without data_offsets", () => plus({ name: "x", fields: { data_offsets: undefined } }), "E_SAFETENSORS_ENTRY"],
  ["entry with an unknown field", () => plus({ name: "x", fields: { offset: 0 } }), "E_SAFETENSORS_ENTRY"],

  // dtype
  ["unknown dtype", () => plus({ name: "x", dtype: "Q4", shape: [0] }), "E_SAFETENSORS_DTYPE"],
  ["lower-case dtype", () => plus({ name: "x", dtype: "f32", shape: [0] }), "E_SAFETENSORS_DTYPE"],
  ["dtype is a number", () => plus({ name: "x", dtype: 4, shape: [0] }), "E_SAFETENSORS_DTYPE"],
  ["sub-byte dtype F4 (not accepted)", () => plus({ name: "x", dtype: "F4", shape: [2] }), "E_SAFETENSORS_DTYPE"],
  ["dtype naming an Object.prototype member", () => plus({ name: "x", dtype: "constructor", shape: [0] }), "E_SAFETENSORS_DTYPE"],

  // shape
  ["negative dim", () => plus({ name: "x", shape: [-1], bytes: 0 }), "E_SAFETENSORS_SHAPE"],
  ["fractional dim", () => plus({ name: "x", shape: [1.5], bytes: 1 }), "E_SAFETENSORS_SHAPE"],
  ["dim written as a string", () => plus({ name: "x", shape: ["4"], bytes: 4 }), "E_SAFETENSORS_SHAPE"],
  ["dim is null", () => plus({ name: "x", shape: [null], bytes: 0 }), "E_SAFETENSORS_SHAPE"],
  ["shape is a number, not a list", () => plus({ name: "x", shape: 4, bytes: 4 }), "E_SAFETENSORS_SHAPE"],
  ["dim beyond 2^53 (not a safe integer)", () => plus({ name: "x", shape: [2 ** 53 + 2], bytes: 0 }), "E_SAFETENSORS_SHAPE"],
  ["dim of 1e400 (parses to Infinity)", () => raw('{"x":{"dtype":"U8","shape":[1e400],"data_offsets":[0,0]}}'), "E_SAFETENSORS_SHAPE"],
  [`${MAX_DIMS + 1} dims, one over the limit`, () => plus({ name: "x", shape: Array(MAX_DIMS + 1).fill(1) }), "E_SAFETENSORS_SHAPE"],
  ["100000 dims", () => plus({ name: "x", shape: Array(100_000).fill(1), bytes: 1 }), "E_SAFETENSORS_SHAPE"],

  // arithmetic
  ["shape product overflows 2^53", () => plus({ name: "x", dtype: "F32", shape: [2 ** 31, 2 ** 31, 2 ** 31], bytes: 0 }), "E_SAFETENSORS_OVERFLOW"],
  ["shape product overflows before a zero dim", () => plus({ name: "x", shape: [2 ** 31, 2 ** 31, 2 ** 31, 0], bytes: 0 }), "E_SAFETENSORS_OVERFLOW"],
  ["byte size overflows only after the dtype factor", () => plus({ name: "x", dtype: "F64", shape: [2 ** 26, 2 ** 26], bytes: 0 }), "E_SAFETENSORS_OVERFLOW"],

  // byte length against shape x dtype
  ["byte length shorter than the shape needs", () => plus({ name: "x", dtype: "F32", shape: [2], bytes: 4 }), "E_SAFETENSORS_BYTE_LENGTH"],
  ["byte length longer than the shape needs", () => plus({ name: "x", dtype: "BF16", shape: [3], bytes: 8 }), "E_SAFETENSORS_BYTE_LENGTH"],
  ["empty tensor spanning bytes", () => plus({ name: "x", dtype: "F32", shape: [4, 0], bytes: 4 }), "E_SAFETENSORS_BYTE_LENGTH"],

  // data_offsets
  ["data_offsets end before they begin", () => plus({ name: "x", shape: [0], offsets: [20, 10] }), "E_SAFETENSORS_OFFSETS"],
  ["data_offsets with one element", () => plus({ name: "x", shape: [0], offsets: [20] }), "E_SAFETENSORS_OFFSETS"],
  ["data_offsets with three elements", () => plus({ name: "x", shape: [0], offsets: [20, 20, 20] }), "E_SAFETENSORS_OFFSETS"],
  ["data_offsets is an object", () => plus({ name: "x", shape: [0], offsets: { begin: 20, end: 20 } }), "E_SAFETENSORS_OFFSETS"],
  ["negative data_offsets", () => plus({ name: "x", shape: [0], offsets: [-4, -4] }), "E_SAFETENSORS_OFFSETS"],
  ["data_offsets as strings", () => plus({ name: "x", shape: [0], offsets: ["20", "20"] }), "E_SAFETENSORS_OFFSETS"],
  ["fractional data_offsets", () => plus({ name: "x", shape: [0], offsets: [20.5, 20.5] }), "E_SAFETENSORS_OFFSETS"],
  ["data_offsets beyond 2^53", () => plus({ name: "x", shape: [0], offsets: [2 ** 60, 2 ** 60] }), "E_SAFETENSORS_OFFSETS"],
  ["overlapping tensors", () => only(u8("a", 4, [0, 4]), u8("b", 4, [2, 6])), "E_SAFETENSORS_OFFSETS"],
  ["two tensors sharing the same bytes (aliasing)", () => only(u8("a", 4, [0, 4]), u8("b", 4, [0, 4])), "E_SAFETENSORS_OFFSETS"],
  ["gap between tensors", () => buildSafetensors({ tensors: [u8("a", 4, [0, 4]), u8("b", 4, [8, 12])] }), "E_SAFETENSORS_OFFSETS"],
  ["first tensor does not start at offset 0", () => only(u8("a", 4, [4, 8])), "E_SAFETENSORS_OFFSETS"],
  ["unindexed bytes after the last tensor (a polyglot)", () => buildSafetensors({ tensors: VALID_TENSORS, trailing: 7 }), "E_SAFETENSORS_OFFSETS"],
  ["data bytes but no tensors at all", () => buildSafetensors({ header: {}, trailing: 1 }), "E_SAFETENSORS_OFFSETS"],

  // data section shorter than the header says
  ["data_offsets out of range (past the data)", () => buildSafetensors({ tensors: [u8("a", 100, [0, 100])], data: new Uint8Array(10) }), "E_SAFETENSORS_TRUNCATED"],
  ["data section cut 3 bytes short", () => validFile().subarray(0, validFile().length - 3), "E_SAFETENSORS_TRUNCATED"],
  ["a 10^15-element tensor in a small file", () => only({ name: "x", shape: [1e15] }), "E_SAFETENSORS_TRUNCATED"],
  ["a 4 * 10^15-byte F32 tensor in a small file", () => only({ name: "x", dtype: "F32", shape: [1e5, 1e5, 1e5] }), "E_SAFETENSORS_TRUNCATED"],

  // __metadata__
  ["__metadata__ value is a number", () => buildSafetensors({ tensors: VALID_TENSORS, metadata: { format: 1 }, data: new Uint8Array(VALID_DATA_BYTES) }), "E_SAFETENSORS_METADATA"],
  ["__metadata__ value is null", () => buildSafetensors({ tensors: VALID_TENSORS, metadata: { format: null }, data: new Uint8Array(VALID_DATA_BYTES) }), "E_SAFETENSORS_METADATA"],
  ["__metadata__ value is an object", () => buildSafetensors({ tensors: VALID_TENSORS, metadata: { nested: { a: "b" } }, data: new Uint8Array(VALID_DATA_BYTES) }), "E_SAFETENSORS_METADATA"],
  ["__metadata__ is a list", () => buildSafetensors({ tensors: VALID_TENSORS, metadata: ["pt"], data: new Uint8Array(VALID_DATA_BYTES) }), "E_SAFETENSORS_METADATA"],
  ["__metadata__ is a string", () => buildSafetensors({ tensors: VALID_TENSORS, metadata: "pt", data: new Uint8Array(VALID_DATA_BYTES) }), "E_SAFETENSORS_METADATA"],

  // count
  [
    `${MAX_TENSORS + 1} tensors, one over the limit (about 9 MB of header)`,
    () => {
      const parts = Array.from({ length: MAX_TENSORS + 1 }, (_, i) => `"${i.toString(36)}":0`);
      return raw(`{${parts.join(",")}}`);
    },
    "E_SAFETENSORS_TOO_MANY",
  ],
];

const failure = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

/** Everything a successful read promises: contiguous, fully covered data, byte lengths matching shapes. */
function expectConsistent(header: SafetensorsHeader): void {
  let expected = header.dataStart;
  for (const tensor of header.tensors) {
    expect(tensor.fileOffset).toBe(expected);
    expect(tensor.elements).toBe(tensor.shape.reduce((a, b) => a * b, 1));
    expect(tensor.byteLength).toBe(tensor.elements * DTYPE_BYTES[tensor.dtype]);
    expected += tensor.byteLength;
  }
  expect(expected).toBe(header.fileSize);
}

describe("malformed safetensors files: one code per broken rule", () => {
  it("the valid baseline reads, so each case below fails for its own reason", async () => {
    const header = await read(validFile());
    expect(header.tensors.map((t) => t.name)).toEqual(["w", "b", "e"]);
    expect(header.metadata).toEqual({ format: "pt" });
    expectConsistent(header);
  });

  it.each(CASES.map(([rule, build, code]) => [rule, code, build] as const))("%s -> %s", async (_rule, code, build) => {
    const bytes = build();
    const source = countingSource(memorySource(FILE, bytes));
    await expectB158Error(readSafetensorsHeader(source), code, FILE);
    // whatever the header claims, nothing is read (or allocated for reading) beyond the file
    expect(source.largestRead).toBeLessThanOrEqual(bytes.byteLength);
    expect(source.totalRead).toBeLessThanOrEqual(bytes.byteLength);
  });

  it("the catalogue exercises every E_SAFETENSORS_* code", () => {
    const used = new Set(CASES.map(([, , code]) => code));
    const all = Object.keys(ERROR_CODES).filter((code) => code.startsWith("E_SAFETENSORS_"));
    expect(all.filter((code) => !used.has(code as ErrorCode))).toEqual([]);
  });

  it("a hostile header in a real file is rejected after reading at most the file, never 2^63 or 10^15 bytes", async () => {
    const path = join(tmpdir(), `b158-hostile-${process.pid}.safetensors`);
    try {
      for (const [bytes, code] of [
        [buildSafetensors({ header: "{}", headerLength: 2n ** 63n }), "E_SAFETENSORS_HEADER_SIZE"],
        [only({ name: "x", dtype: "F32", shape: [1e5, 1e5, 1e5] }), "E_SAFETENSORS_TRUNCATED"],
        [only({ name: "x", dtype: "F64", shape: [2 ** 26, 2 ** 26], bytes: 0 }), "E_SAFETENSORS_OVERFLOW"],
      ] as const) {
        await writeFile(path, bytes);
        const source = countingSource(await fileSource(path));
        try {
          await expectB158Error(readSafetensorsHeader(source), code, path);
          expect(source.largestRead).toBeLessThanOrEqual(bytes.byteLength);
        } finally {
          await source.close();
        }
      }
    } finally {
      await rm(path, { force: true });
    }
  });
});

describe("hostile but valid headers are accepted", () => {
  const accepts = async (bytes: Uint8Array) => {
    const header = await read(bytes);
    expectConsistent(header);
    return header;
  };

  it("a header space-padded to a multiple of 8, as the reference writer pads", async () => {
    const json = JSON.stringify({ a: { dtype: "U8", shape: [1], data_offsets: [0, 1] } });
    const header = await accepts(raw(json + " ".repeat(8 - (json.length % 8)), 1));
    expect(header.tensors).toHaveLength(1);
  });

  it("0-d, empty and exactly MAX_DIMS-dimensional tensors", async () => {
    const header = await accepts(only({ name: "scalar", dtype: "F32", shape: [] }, { name: "empty", dtype: "F16", shape: [0, 3] }, { name: "deep", shape: Array(MAX_DIMS).fill(1) }));
    expect(header.tensors.map((t) => [t.name, t.elements])).toEqual([
      ["scalar", 1],
      ["empty", 0],
      ["deep", 1],
    ]);
  });

  it("a multi-megabyte metadata string and a string of a million escapes parse (no regexp stack overflow)", async () => {
    const long = "x".repeat(12_000_000);
    const escapes = "\\n".repeat(1_000_000);
    const header = await accepts(raw(`{"__metadata__":{"long":"${long}","escapes":"${escapes}"}}`));
    expect(header.metadata?.long).toHaveLength(long.length);
    expect(header.metadata?.escapes).toBe("\n".repeat(1_000_000));
  });

  it("a tensor named __proto__ is just a name", async () => {
    const header = await accepts(raw('{"__proto__":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2));
    expect(header.tensors.map((t) => t.name)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });
});

describe("truncation sweep", () => {
  it("every proper prefix of a valid file fails with E_SAFETENSORS_TRUNCATED or E_SAFETENSORS_HEADER_SIZE, and nothing else", async () => {
    const bytes = validFile();
    for (let n = 0; n < bytes.length; n++) {
      const source = countingSource(memorySource(FILE, bytes.subarray(0, n)));
      const error = await failure(readSafetensorsHeader(source));
      expect(error, `prefix of ${n} bytes`).toBeInstanceOf(B158Error);
      expect(["E_SAFETENSORS_TRUNCATED", "E_SAFETENSORS_HEADER_SIZE"], `prefix of ${n} bytes`).toContain((error as B158Error).code);
      expect(source.largestRead).toBeLessThanOrEqual(n);
    }
    await expect(read(bytes)).resolves.toBeDefined();
  });
});

describe("never crashes: any input reads or throws a B158Error with an E_SAFETENSORS_* code", () => {
  /** Runs the reader; a success must be self-consistent, a failure must be ours and name the rule family. */
  const survive = async (bytes: Uint8Array): Promise<void> => {
    const source = countingSource(memorySource(FILE, bytes));
    let header: SafetensorsHeader;
    try {
      header = await readSafetensorsHeader(source);
    } catch (error) {
      if (!(error instanceof B158Error)) throw error;
      expect(error.code).toMatch(/^E_SAFETENSORS_/);
      expect(error.message).toContain(FILE);
      return;
    } finally {
      expect(source.largestRead).toBeLessThanOrEqual(bytes.byteLength);
    }
    expectConsistent(header);
  };

  it("arbitrary small byte strings", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 96, size: "max" }), survive), { numRuns: 300 });
  });

  it("arbitrary small headers behind a correct length prefix", async () => {
    const text = fc.oneof(fc.string({ maxLength: 64, size: "max" }), fc.json({ depthSize: "small" }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"));
    await fc.assert(
      fc.asyncProperty(text, fc.nat(32), async (header, data) => survive(raw(header, data))),
      { numRuns: 300 },
    );
  });

  it("random byte flips of a valid file", async () => {
    const base = validFile();
    const flips = fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(flips, async (changes) => {
        const bytes = base.slice();
        for (const [at, value] of changes) bytes[at] = value;
        await survive(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it("random cuts and splices of a valid file", async () => {
    const base = validFile();
    const edit = fc.tuple(fc.nat(base.length), fc.nat(base.length), fc.uint8Array({ maxLength: 8 }));
    await fc.assert(
      fc.asyncProperty(edit, async ([from, to, insert]) => {
        const [a, b] = from <= to ? [from, to] : [to, from];
        const bytes = new Uint8Array([...base.subarray(0, a), ...insert, ...base.subarray(b)]);
        await survive(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it("structurally plausible headers with hostile fields (parseSafetensorsHeader, pure)", () => {
    const junk = fc.jsonValue({ maxDepth: 2 });
    const dim = fc.oneof(fc.nat(6), fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, 2 ** 53, 2 ** 31, 1e15, -0), junk);
    const entry = fc.oneof(
      { weight: 4, arbitrary: fc.record({ dtype: fc.oneof(fc.constantFrom("U8", "F32", "BF16", "F64", "Q4", "f16", "F4"), junk), shape: fc.oneof(fc.array(dim, { maxLength: 4 }), junk), data_offsets: fc.oneof(fc.tuple(fc.nat(48), fc.nat(48)), fc.array(fc.integer({ min: -2, max: 48 }), { maxLength: 3 }), junk) }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: junk },
    );
    const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 3 }), fc.constant("__metadata__")), entry, { maxKeys: 4 });
    fc.assert(
      fc.property(header, fc.nat(64), (value, dataBytes) => {
        const bytes = new TextEncoder().encode(JSON.stringify(value));
        try {
          expectConsistent(parseSafetensorsHeader(bytes, 8 + bytes.byteLength + dataBytes, FILE));
        } catch (error) {
          if (!(error instanceof B158Error)) throw error;
          expect(error.code).toMatch(/^E_SAFETENSORS_/);
        }
      }),
      { numRuns: 300 },
    );
  });
});
