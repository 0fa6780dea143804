import { describe, expect, it } from "vitest";
import { B158Error } from "../../errors.js";
import fc from "fast-check";
import { decodeHeader, encodeHeader, encodeHeaderParts, HeaderSyntaxError, MAX_HEADER_DEPTH, type B158Header } from "./header.js";

const bytes = (...parts: (number | string)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : [...Buffer.from(p, "utf8")])));

/** `depth` nested one-element arrays around 1. */
const nested = (depth: number) => Uint8Array.from([...Array(depth).fill(0x91), 0x01]);

describe("decodeHeader: the MessagePack subset of docs/FORMAT.md §1.2", () => {
  it("reads every allowed type, integers and floats of every width as numbers", () => {
    const header = bytes(0x8b,
      0xa1, "a", 0xc0,
      0xa1, "b", 0xc3,
      0xa1, "c", 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, // u64 2^32
      0xa1, "d", 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // i64 -2
      0xa1, "e", 0xca, 0x3f, 0xc0, 0, 0, // f32 1.5
      0xa1, "f", 0xcb, 0x41, 0xf0, 0, 0, 0, 0, 0, 0, // f64 2^32 (how msgpackr writes integers >= 2^32)
      0xa1, "g", 0xd9, 2, "é",
      0xa1, "h", 0xc4, 2, 7, 8,
      0xa1, "i", 0x92, 0xe0, 0x7f, // fixint -32, 127
      0xa1, "j", 0xde, 0, 1, 0xa1, "k", 0x80, // map16 holding an empty map
      0xa1, "l", 0xdc, 0, 0); // array16, empty
    expect(decodeHeader(header)).toEqual({ a: null, b: true, c: 2 ** 32, d: -2, e: 1.5, f: 2 ** 32, g: "é", h: Uint8Array.from([7, 8]), i: [-32, 127], j: { k: {} }, l: [] });
  });

  it("round-trips what the writer encodes, with keys sorted by their UTF-8 bytes", () => {
    const header = { tool: { version: "1", name: "b158" }, files: { "config.json": Uint8Array.from([123, 125]) }, format: "b158", n: [2 ** 40, -1, 0.25, null] };
    const encoded = encodeHeader(header as unknown as B158Header);
    expect(decodeHeader(encoded)).toEqual(header);
    expect(Buffer.from(encoded.subarray(0, 7)).toString("hex")).toBe("84a566696c6573"); // a map of 4, first key "files"
  });

  it("keeps a key named __proto__ as data", () => {
    const decoded = decodeHeader(bytes(0x81, 0xa9, "__proto__", 0x81, 0xa1, "x", 0x01)) as Record<string, unknown>;
    expect(Object.keys(decoded)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect((decoded as { x?: unknown }).x).toBeUndefined();
  });

  it(`nests maps and arrays ${MAX_HEADER_DEPTH} levels deep, not ${MAX_HEADER_DEPTH + 1}`, () => {
    expect(() => decodeHeader(nested(MAX_HEADER_DEPTH))).not.toThrow();
    expect(() => decodeHeader(nested(MAX_HEADER_DEPTH + 1))).toThrow(/nested deeper than 64/);
  });

  it.each([
    ["a timestamp (extension type -1)", bytes(0xd6, 0xff, 0, 0, 0, 1)],
    ["an extension of type 5", bytes(0xd4, 5, 1)],
    ["msgpackr's undefined (fixext 1, type 0)", bytes(0x81, 0xa1, "a", 0xd4, 0, 0)],
    ["an ext 8", bytes(0xc7, 1, 9, 0)],
    ["the never-used byte 0xc1", bytes(0xc1)],
    ["an integer map key", bytes(0x81, 0x01, 0x02)],
    ["a bin map key", bytes(0x81, 0xc4, 1, 0x61, 0x02)],
    ["a duplicate key", bytes(0x82, 0xa1, "a", 1, 0xa1, "a", 2)],
    ["a string that is not UTF-8", bytes(0xa2, 0xff, 0xfe)],
    ["a UTF-8 encoded surrogate (CESU-8)", bytes(0xa3, 0xed, 0xa0, 0x80)],
    ["a byte after the value", bytes(0x01, 0x02)],
    ["a string longer than the bytes left", bytes(0xd9, 10, "abc")],
    ["an array32 claiming 2^32 - 1 items", bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)],
    ["a map32 claiming 2^32 - 1 entries", bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, "a", 0x01)],
    ["nothing at all", bytes()],
  ])("refuses %s", (_name, input) => {
    expect(() => decodeHeader(input)).toThrow(HeaderSyntaxError);
  });

  it("keeps a leading byte-order mark as a character", () => {
    expect(decodeHeader(bytes(0xa4, 0xef, 0xbb, 0xbf, "a"))).toBe("\uFEFFa");
  });
});

describe("encodeHeader", () => {
  it("refuses a string UTF-8 cannot encode (a lone surrogate), naming where it is", () => {
    const header = { format: "b158", tensors: [{ name: "model.\uD800.weight" }] } as unknown as B158Header;
    let caught: unknown;
    try {
      encodeHeader(header);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(B158Error);
    expect((caught as B158Error).code).toBe("E_MODEL_UNSUPPORTED");
    expect((caught as B158Error).message).toContain("header.tensors[0].name");
  });
});

describe("encodeHeaderParts: the header around its embedded files' bytes", () => {
  const rest = { format: "b158", model: { family: "bitnet", architecture: null, config: { vocab_size: 128256 } }, provenance: { source: { kind: "local" }, files: [], options: {} }, tensors: [{ name: "w", scale: 0.5 }], tool: { name: "b158", version: "1" } };
  const bytesOf = (size: number, seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff);

  /** The parts joined with the files' bytes, as a writer streams them. */
  const joined = (files: Record<string, Uint8Array>) => {
    const parts = encodeHeaderParts(rest as unknown as Omit<B158Header, "files">, Object.entries(files).map(([name, b]) => ({ name, size: b.byteLength })));
    const out = Buffer.concat([parts.head, ...parts.files.flatMap((f) => [f.prefix, files[f.name]!]), parts.tail]);
    expect(out.byteLength).toBe(parts.length);
    return out;
  };
  const whole = (files: Record<string, Uint8Array>) => Buffer.from(encodeHeader({ ...rest, files } as unknown as B158Header));

  it("gives encodeHeader's bytes at every MessagePack length boundary (map, str and bin prefixes)", () => {
    for (const count of [0, 1, 15, 16, 17]) {
      const files = Object.fromEntries(Array.from({ length: count }, (_, i) => [`f${i}.json`, bytesOf(i * 3, i)]));
      expect(joined(files)).toEqual(whole(files));
    }
    for (const size of [0, 1, 255, 256, 65535, 65536, 70000]) expect(joined({ "tokenizer.json": bytesOf(size, size) })).toEqual(whole({ "tokenizer.json": bytesOf(size, size) }));
    for (const length of [31, 32, 255, 256]) {
      const name = "n".repeat(length);
      expect(joined({ [name]: bytesOf(3, 1) })).toEqual(whole({ [name]: bytesOf(3, 1) }));
    }
  });

  it("gives encodeHeader's bytes for random names (sorted by UTF-8 bytes, not UTF-16 units) and sizes", () => {
    const name = fc.stringMatching(/^[a-z0-9./_-]{1,40}$/).chain((ascii) => fc.constantFrom(ascii, `${ascii}\uFF5E`, `${ascii}\u{1F600}`, `é${ascii}`));
    fc.assert(
      fc.property(fc.dictionary(name, fc.integer({ min: 0, max: 300 }), { maxKeys: 20 }), (sizes) => {
        const files = Object.fromEntries(Object.entries(sizes).map(([n, size], i) => [n, bytesOf(size, i)]));
        expect(joined(files)).toEqual(whole(files));
      }),
    );
  });

  it("refuses a file name UTF-8 cannot encode, as encodeHeader does", () => {
    const parts = () => encodeHeaderParts(rest as unknown as Omit<B158Header, "files">, [{ name: "bad\uD800.json", size: 1 }]);
    expect(parts).toThrow(B158Error);
    expect(parts).toThrow(/lone surrogate/);
  });
});
