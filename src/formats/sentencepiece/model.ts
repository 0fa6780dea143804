/**
 * The parts of SentencePiece's ModelProto (sentencepiece_model.proto) b158 reads and writes:
 * the pieces, the trainer's model type and special ids, and the normalizer flags GGUF needs.
 * Field numbers below are the .proto's.
 */

export const PIECE_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
export type PieceType = (typeof PIECE_TYPE)[keyof typeof PIECE_TYPE];

export const MODEL_TYPE = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  readonly type: PieceType;
}

export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly trainer: {
    readonly modelType: number;
    readonly vocabSize: number;
    readonly byteFallback: boolean;
    readonly unkId: number;
    readonly bosId: number;
    readonly eosId: number;
    readonly padId: number;
  };
  readonly normalizer: {
    readonly name: string;
    readonly addDummyPrefix: boolean;
    readonly removeExtraWhitespaces: boolean;
  };
}

/** ModelProto field numbers. */
export const FIELD = {
  model: { pieces: 1, trainerSpec: 2, normalizerSpec: 3 },
  piece: { piece: 1, score: 2, type: 3 },
  trainer: { modelType: 3, vocabSize: 4, byteFallback: 35, unkId: 40, bosId: 41, eosId: 42, padId: 43 },
  normalizer: { name: 1, addDummyPrefix: 3, removeExtraWhitespaces: 4 },
} as const;

/** Protobuf wire types. */
export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;
