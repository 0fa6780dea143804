import { describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { MODEL_TYPE, PIECE_TYPE, type PieceType, type SentencePieceModel } from "./spec.js";
import { encodeSentencePieceModel } from "./write.js";

const tiny: SentencePieceModel = {
  pieces: [{ piece: "<unk>", score: 0, type: PIECE_TYPE.UNKNOWN }],
  trainer: { modelType: MODEL_TYPE.BPE, vocabSize: 1, byteFallback: true, unkId: 0, bosId: 1, eosId: 2, padId: -1 },
  normalizer: { name: "identity", addDummyPrefix: true, removeExtraWhitespaces: false },
};

describe("SentencePiece writer", () => {
  it("writes golden protobuf bytes: fixed32 score, field keys over 15 as 2-byte varints, pad_id -1 as a 10-byte varint", () => {
    const hex = [
      "0a0e", "0a05" + Buffer.from("<unk>").toString("hex"), "1500000000", "1802", // pieces: piece, score 0.0f, type UNKNOWN
      "121c", "1802", "2001", "980201", "c00200", "c80201", "d00202", "d802ffffffffffffffffff01", // trainer_spec: BPE, 1, byte_fallback, unk 0, bos 1, eos 2, pad -1
      "1a0e", "0a08" + Buffer.from("identity").toString("hex"), "1801", "2000", // normalizer_spec
    ].join("");
    expect(Buffer.from(encodeSentencePieceModel(tiny)).toString("hex")).toBe(hex);
  });

  it("is deterministic", () => {
    expect(encodeSentencePieceModel(tiny)).toEqual(encodeSentencePieceModel(structuredClone(tiny)));
  });

  it("refuses what protobuf cannot carry", async () => {
    await expectB158Error(() => encodeSentencePieceModel({ ...tiny, pieces: [{ piece: "x", score: 0, type: 7 as PieceType }] }), "E_TOKENIZER_MODEL");
    await expectB158Error(() => encodeSentencePieceModel({ ...tiny, trainer: { ...tiny.trainer, vocabSize: 2 ** 31 } }), "E_TOKENIZER_MODEL");
    await expectB158Error(() => encodeSentencePieceModel({ ...tiny, trainer: { ...tiny.trainer, bosId: 1.5 } }), "E_TOKENIZER_MODEL");
    await expectB158Error(() => encodeSentencePieceModel({ ...tiny, pieces: [{ piece: "\ud800", score: 0, type: PIECE_TYPE.NORMAL }] }), "E_TOKENIZER_MODEL");
  });
});
