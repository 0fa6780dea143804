import { describe, expect, it } from "vitest";
import { B158Error } from "../../errors.js";
import { MODEL_TYPE, PIECE_TYPE, type SentencePieceModel } from "./model.js";
import { decodeSentencePieceModel } from "./read.js";
import { encodeSentencePieceModel } from "./write.js";

const model: SentencePieceModel = {
  pieces: [
    { piece: "<unk>", score: 0, type: PIECE_TYPE.UNKNOWN },
    { piece: "<s>", score: 0, type: PIECE_TYPE.CONTROL },
    { piece: "▁héllo", score: -1.5, type: PIECE_TYPE.NORMAL },
    { piece: "<0x0A>", score: 0, type: PIECE_TYPE.BYTE },
  ],
  trainer: { modelType: MODEL_TYPE.BPE, vocabSize: 4, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 },
  normalizer: { name: "identity", addDummyPrefix: true, removeExtraWhitespaces: false },
};

describe("SentencePiece tokenizer.model", () => {
  it("round-trips, including a negative pad id and non-ASCII pieces", () => {
    expect(decodeSentencePieceModel(encodeSentencePieceModel(model))).toEqual(model);
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

  it("rejects a length that runs past the end", () => {
    try {
      decodeSentencePieceModel(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x00]));
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_TOKENIZER_MODEL");
    }
  });
});
