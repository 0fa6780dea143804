import { B158Error } from "../../errors.js";
import { DEFAULTS, FIELD, LIMITS, PIECE_TYPE, WIRE, type PieceType, type SentencePiece, type SentencePieceModel, type SentencePieceNormalizer, type SentencePieceTrainer } from "./spec.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes a tokenizer.model. Strict: every length is checked against the bytes that remain in its
 * enclosing message, varints are at most 10 bytes, unknown fields are skipped by wire type, and any
 * violation (truncation included) is an E_TOKENIZER_MODEL. Fields the file leaves out take the
 * .proto's defaults; a field that appears twice takes its last value, as protobuf merges messages.
 */
export function decodeSentencePieceModel(bytes: Uint8Array, file = "tokenizer.model"): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  const trainer: Mutable<SentencePieceTrainer> = { ...DEFAULTS.trainer };
  const normalizer: Mutable<SentencePieceNormalizer> = { ...DEFAULTS.normalizer };
  const top = new ProtoReader(bytes, file);
  while (!top.done()) {
    const { field, wire } = top.key();
    if (field === FIELD.model.pieces && wire === WIRE.bytes) {
      if (pieces.length >= LIMITS.maxPieces) top.fail(`holds more than ${LIMITS.maxPieces} pieces`);
      pieces.push(readPiece(top.sub(), pieces.length));
    } else if (field === FIELD.model.trainerSpec && wire === WIRE.bytes) {
      const r = top.sub();
      while (!r.done()) {
        const k = r.key();
        if (k.wire !== WIRE.varint) {
          r.skip(k.wire);
          continue;
        }
        const v = r.int32();
        if (k.field === FIELD.trainer.modelType) trainer.modelType = v;
        else if (k.field === FIELD.trainer.vocabSize) trainer.vocabSize = v;
        else if (k.field === FIELD.trainer.byteFallback) trainer.byteFallback = v !== 0;
        else if (k.field === FIELD.trainer.unkId) trainer.unkId = v;
        else if (k.field === FIELD.trainer.bosId) trainer.bosId = v;
        else if (k.field === FIELD.trainer.eosId) trainer.eosId = v;
        else if (k.field === FIELD.trainer.padId) trainer.padId = v;
      }
    } else if (field === FIELD.model.normalizerSpec && wire === WIRE.bytes) {
      const r = top.sub();
      while (!r.done()) {
        const k = r.key();
        if (k.field === FIELD.normalizer.name && k.wire === WIRE.bytes) normalizer.name = r.string("normalizer name");
        else if (k.field === FIELD.normalizer.addDummyPrefix && k.wire === WIRE.varint) normalizer.addDummyPrefix = r.int32() !== 0;
        else if (k.field === FIELD.normalizer.removeExtraWhitespaces && k.wire === WIRE.varint) normalizer.removeExtraWhitespaces = r.int32() !== 0;
        else r.skip(k.wire);
      }
    } else top.skip(wire);
  }
  if (pieces.length === 0) top.fail("holds no pieces");
  return { pieces, trainer, normalizer };
}

function readPiece(r: ProtoReader, index: number): SentencePiece {
  let piece = "";
  let score = 0;
  let type: PieceType = DEFAULTS.pieceType;
  while (!r.done()) {
    const { field, wire } = r.key();
    if (field === FIELD.piece.piece && wire === WIRE.bytes) piece = r.string(`piece ${index}`);
    else if (field === FIELD.piece.score && wire === WIRE.fixed32) score = r.float();
    else if (field === FIELD.piece.type && wire === WIRE.varint) {
      const value = r.int32();
      if (value < PIECE_TYPE.NORMAL || value > PIECE_TYPE.BYTE) r.fail(`piece ${index} has type ${value}, which is not a SentencePiece type (1..6)`);
      type = value as PieceType;
    } else r.skip(wire);
  }
  return { piece, score, type };
}

/** A cursor over one message: [position, end) of `bytes`. Every read stays inside `end`. */
class ProtoReader {
  private position: number;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
    start = 0,
    private readonly end = bytes.byteLength,
  ) {
    this.position = start;
  }
  fail(message: string): never {
    throw new B158Error("E_TOKENIZER_MODEL", `${this.file}: ${message} (at byte ${this.position})`, {
      details: { file: this.file, position: this.position },
      hint: "tokenizer.model is corrupt or not a SentencePiece model: download it again.",
    });
  }
  done(): boolean {
    return this.position >= this.end;
  }
  private varint(): bigint {
    let result = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.position >= this.end) this.fail("ends inside a varint");
      const b = this.bytes[this.position++]!;
      // the 10th byte carries bit 63 only
      if (i === 9 && b > 1) this.fail("has a varint over 64 bits");
      result |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) return result;
    }
    return this.fail("has a varint longer than 10 bytes");
  }
  key(): { field: number; wire: number } {
    const k = this.varint();
    const field = k >> 3n;
    if (field === 0n || field > BigInt(LIMITS.maxField)) this.fail(`has field number ${field}, which protobuf does not allow (1..${LIMITS.maxField})`);
    return { field: Number(field), wire: Number(k & 7n) };
  }
  /** An int32/bool/enum varint: the low 32 bits, signed. */
  int32(): number {
    return Number(BigInt.asIntN(32, this.varint()));
  }
  float(): number {
    if (this.end - this.position < 4) this.fail("ends inside a float");
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.position, 4).getFloat32(0, true);
    this.position += 4;
    return value;
  }
  private length(): number {
    const n = this.varint();
    if (n > BigInt(this.end - this.position)) this.fail(`has a length of ${n} bytes, which runs past the end of its message (${this.end - this.position} left)`);
    return Number(n);
  }
  string(what: string): string {
    const n = this.length();
    const text = this.bytes.subarray(this.position, this.position + n);
    try {
      const value = utf8.decode(text);
      this.position += n;
      return value;
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }
  sub(): ProtoReader {
    const n = this.length();
    const reader = new ProtoReader(this.bytes, this.file, this.position, this.position + n);
    this.position += n;
    return reader;
  }
  skip(wire: number): void {
    if (wire === WIRE.varint) this.varint();
    else if (wire === WIRE.fixed64) this.advance(8);
    else if (wire === WIRE.fixed32) this.advance(4);
    else if (wire === WIRE.bytes) this.advance(this.length());
    else this.fail(`has wire type ${wire}, which a ModelProto never uses`);
  }
  private advance(n: number): void {
    if (this.end - this.position < n) this.fail("ends inside a field");
    this.position += n;
  }
}
