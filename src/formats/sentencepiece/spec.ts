/**
 * The parts of SentencePiece's ModelProto (sentencepiece_model.proto, proto2) b158 reads and writes:
 * the pieces, the trainer's model type and special ids, and the normalizer flags GGUF needs.
 * Field numbers and defaults below are the .proto's; every other field is skipped on read.
 *
 *   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
 *   SentencePiece   1 piece string  2 score float (fixed32)  3 type enum
 *   TrainerSpec     3 model_type  4 vocab_size  35 byte_fallback  40 unk_id  41 bos_id  42 eos_id  43 pad_id
 *   NormalizerSpec  1 name  3 add_dummy_prefix  4 remove_extra_whitespaces
 *
 * int32 fields are varints; a negative one (pad_id -1) is its 64-bit two's complement, 10 bytes.
 */

export const PIECE_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
export type PieceType = (typeof PIECE_TYPE)[keyof typeof PIECE_TYPE];

export const MODEL_TYPE = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

export interface SentencePiece {
  readonly piece: string;
  /** A float32 on the wire: values that are not float32-exact come back rounded. */
  readonly score: number;
  readonly type: PieceType;
}

export interface SentencePieceTrainer {
  readonly modelType: number;
  readonly vocabSize: number;
  readonly byteFallback: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
}

export interface SentencePieceNormalizer {
  readonly name: string;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
}

export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly trainer: SentencePieceTrainer;
  readonly normalizer: SentencePieceNormalizer;
}

/** ModelProto field numbers. */
export const FIELD = {
  model: { pieces: 1, trainerSpec: 2, normalizerSpec: 3 },
  piece: { piece: 1, score: 2, type: 3 },
  trainer: { modelType: 3, vocabSize: 4, byteFallback: 35, unkId: 40, bosId: 41, eosId: 42, padId: 43 },
  normalizer: { name: 1, addDummyPrefix: 3, removeExtraWhitespaces: 4 },
} as const;

/** The .proto's defaults: what a reader reports for a field the file leaves out. */
export const DEFAULTS = {
  pieceType: PIECE_TYPE.NORMAL,
  trainer: { modelType: MODEL_TYPE.UNIGRAM, vocabSize: 8000, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 },
  normalizer: { name: "", addDummyPrefix: true, removeExtraWhitespaces: true },
} as const satisfies { pieceType: PieceType; trainer: SentencePieceTrainer; normalizer: SentencePieceNormalizer };

/** Protobuf wire types. 3 and 4 (groups) are deprecated and never occur in a ModelProto. */
export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

export const LIMITS = {
  /** Far above any real vocabulary (Gemma's 256K); bounds the work a hostile file can cause. */
  maxPieces: 4_000_000,
  /** Protobuf's own limit on field numbers (2^29 - 1). */
  maxField: 536_870_911,
} as const;
