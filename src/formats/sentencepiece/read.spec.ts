import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { B158Error } from "../../errors.js";
import { decodeSentencePieceModel } from "./read.js";
import { DEFAULTS, MODEL_TYPE, PIECE_TYPE, type PieceType, type SentencePieceModel } from "./spec.js";
import { encodeSentencePieceModel } from "./write.js";

const model: SentencePieceModel = {
  pieces: [
    { piece: "<unk>", score: 0, type: PIECE_TYPE.UNKNOWN },
    { piece: "<s>", score: 0, type: PIECE_TYPE.CONTROL },
    { piece: "▁héllo", score: -1.5, type: PIECE_TYPE.NORMAL },
    { piece: "\ufeff😀", score: -2.25, type: PIECE_TYPE.USER_DEFINED },
    { piece: "<0x0A>", score: 0, type: PIECE_TYPE.BYTE },
  ],
  trainer: { modelType: MODEL_TYPE.BPE, vocabSize: 5, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 },
  normalizer: { name: "identity", addDummyPrefix: true, removeExtraWhitespaces: false },
};

// A tiny protobuf builder, independent of write.ts, for hand-made inputs.
const varint = (value: number | bigint): number[] => {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(value));
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  return [...out, Number(v)];
};
const key = (field: number, wire: number) => varint((field << 3) | wire);
const vField = (field: number, value: number) => [...key(field, 0), ...varint(value)];
const bField = (field: number, bytes: number[] | Uint8Array) => [...key(field, 2), ...varint(bytes.length), ...bytes];
const f32Field = (field: number, value: number) => [...key(field, 5), ...new Uint8Array(Float32Array.of(value).buffer)];
const f64Field = (field: number) => [...key(field, 1), 1, 2, 3, 4, 5, 6, 7, 8];
const text = (s: string) => [...new TextEncoder().encode(s)];
const decode = (bytes: number[]) => decodeSentencePieceModel(Uint8Array.from(bytes));

describe("SentencePiece tokenizer.model reader", () => {
  it("round-trips, including a negative pad id, a leading BOM and non-ASCII pieces", () => {
    expect(decodeSentencePieceModel(encodeSentencePieceModel(model))).toEqual(model);
  });

  it("read(write(model)) equals model for random models", () => {
    const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
    const arbitrary = fc.record({
      pieces: fc.array(fc.record({ piece: fc.string({ unit: "binary", maxLength: 8 }), score: fc.float(), type: fc.integer({ min: 1, max: 6 }).map((t) => t as PieceType) }), { minLength: 1, maxLength: 8 }),
      trainer: fc.record({ modelType: int32, vocabSize: int32, byteFallback: fc.boolean(), unkId: int32, bosId: int32, eosId: int32, padId: int32 }),
      normalizer: fc.record({ name: fc.string({ maxLength: 10 }), addDummyPrefix: fc.boolean(), removeExtraWhitespaces: fc.boolean() }),
    });
    fc.assert(
      fc.property(arbitrary, (m) => {
        expect(decodeSentencePieceModel(encodeSentencePieceModel(m))).toEqual(m);
      }),
      { numRuns: 200 },
    );
  });

  it("skips unknown fields of every wire type at every level", () => {
    const piece = [...f64Field(9), ...bField(1, text("▁a")), ...vField(77, 5), ...f32Field(2, -0.5), ...bField(4, [1, 2]), ...vField(3, PIECE_TYPE.NORMAL), ...f32Field(8, 1)];
    const trainer = [...bField(1, text("corpus.txt")), ...vField(3, MODEL_TYPE.BPE), ...f32Field(10, 0.9995), ...f64Field(500), ...vField(4, 1), ...bField(43, [0])];
    const normalizer = [...bField(2, [0xde, 0xad]), ...bField(1, text("nmt_nfkc")), ...f32Field(3, 1), ...vField(5, 1)];
    const bytes = [...bField(5, [0xff]), ...bField(1, piece), ...f64Field(1000), ...bField(2, trainer), ...f32Field(3, 0), ...bField(3, normalizer), ...vField(9, 300)];
    expect(decode(bytes)).toEqual({
      pieces: [{ piece: "▁a", score: -0.5, type: PIECE_TYPE.NORMAL }],
      // field 43 (pad_id) arrived with the bytes wire type: skipped, so the default stays
      trainer: { ...DEFAULTS.trainer, modelType: MODEL_TYPE.BPE, vocabSize: 1 },
      normalizer: { ...DEFAULTS.normalizer, name: "nmt_nfkc" },
    });
  });

  it("fills in the .proto defaults for absent fields, and the last of a repeated field wins", () => {
    expect(decode(bField(1, bField(1, text("x"))))).toEqual({ pieces: [{ piece: "x", score: 0, type: PIECE_TYPE.NORMAL }], trainer: DEFAULTS.trainer, normalizer: DEFAULTS.normalizer });
    const twice = [...bField(1, []), ...bField(2, [...vField(4, 10), ...vField(41, 5)]), ...bField(2, vField(4, 20))];
    expect(decode(twice).trainer).toMatchObject({ vocabSize: 20, bosId: 5 });
  });

  it("every truncation fails with E_TOKENIZER_MODEL, never another error", () => {
    const bytes = encodeSentencePieceModel(model);
    for (let n = 0; n < bytes.length; n++) {
      try {
        const decoded = decodeSentencePieceModel(bytes.subarray(0, n));
        // A cut exactly between top-level fields is a valid, shorter model: it must still have pieces.
        expect(decoded.pieces.length).toBeGreaterThan(0);
      } catch (e) {
        expect(e).toBeInstanceOf(B158Error);
        expect((e as B158Error).code).toBe("E_TOKENIZER_MODEL");
      }
    }
  });

  it.each([
    ["a length that runs past the end", [0x0a, 0xff, 0xff, 0xff, 0x0f, 0x00]],
    ["an inner length that runs past its message", bField(1, [...key(1, 2), 5, 0x61])],
    ["field number 0", [...bField(1, []), ...vField(0, 1)]],
    ["wire type 3 (group)", [...bField(1, []), ...key(7, 3)]],
    ["wire type 6", [...bField(1, []), ...key(7, 6)]],
    ["an 11-byte varint", [...bField(1, []), ...key(7, 0), ...Array<number>(10).fill(0x80), 0x01]],
    ["a varint over 64 bits", [...bField(1, []), ...key(7, 0), ...Array<number>(9).fill(0xff), 0x02]],
    ["a piece that is not UTF-8", bField(1, bField(1, [0xc3, 0x28]))],
    ["an unknown piece type", bField(1, vField(3, 7))],
    ["a truncated float", bField(1, [...key(2, 5), 0, 0])],
    ["no pieces at all", bField(2, vField(4, 0))],
    ["an empty file", []],
  ])("rejects %s", async (_, bytes) => {
    await expectB158Error(() => decode(bytes), "E_TOKENIZER_MODEL", "tokenizer.model");
  });

  it("never throws anything but E_TOKENIZER_MODEL on arbitrary bytes", () => {
    const valid = [...encodeSentencePieceModel(model)];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64, size: "max" }),
          // mutations of a valid file reach deeper than pure noise
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length)).map(([i, b, cut]) => Uint8Array.from(valid.map((v, j) => (j === i ? b : v)).slice(0, cut))),
        ),
        (bytes) => {
          try {
            decodeSentencePieceModel(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(B158Error);
            expect((e as B158Error).code).toBe("E_TOKENIZER_MODEL");
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
