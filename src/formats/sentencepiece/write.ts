import { B158Error } from "../../errors.js";
import { FIELD, PIECE_TYPE, WIRE, type SentencePieceModel } from "./spec.js";

/**
 * Encodes a SentencePieceModel as protobuf bytes (a tokenizer.model file). Deterministic: messages in
 * field order (pieces, trainer_spec, normalizer_spec), each field written once in field-number order,
 * every field written even when it equals the .proto default. `decodeSentencePieceModel` reads it back
 * to an equal model (scores rounded to float32).
 */
export function encodeSentencePieceModel(model: SentencePieceModel): Uint8Array {
  const out = new ProtoWriter();
  model.pieces.forEach((piece, index) => {
    if (!Number.isInteger(piece.type) || piece.type < PIECE_TYPE.NORMAL || piece.type > PIECE_TYPE.BYTE) invalid(`piece ${index} has type ${piece.type}, which is not a SentencePiece type (1..6)`);
    const p = new ProtoWriter();
    p.string(FIELD.piece.piece, piece.piece);
    p.float(FIELD.piece.score, piece.score);
    p.int32(FIELD.piece.type, piece.type);
    out.message(FIELD.model.pieces, p);
  });
  const t = new ProtoWriter();
  const trainer = model.trainer;
  t.int32(FIELD.trainer.modelType, trainer.modelType);
  t.int32(FIELD.trainer.vocabSize, trainer.vocabSize);
  t.int32(FIELD.trainer.byteFallback, trainer.byteFallback ? 1 : 0);
  t.int32(FIELD.trainer.unkId, trainer.unkId);
  t.int32(FIELD.trainer.bosId, trainer.bosId);
  t.int32(FIELD.trainer.eosId, trainer.eosId);
  t.int32(FIELD.trainer.padId, trainer.padId);
  out.message(FIELD.model.trainerSpec, t);
  const n = new ProtoWriter();
  n.string(FIELD.normalizer.name, model.normalizer.name);
  n.int32(FIELD.normalizer.addDummyPrefix, model.normalizer.addDummyPrefix ? 1 : 0);
  n.int32(FIELD.normalizer.removeExtraWhitespaces, model.normalizer.removeExtraWhitespaces ? 1 : 0);
  out.message(FIELD.model.normalizerSpec, n);
  return out.finish();
}

function invalid(message: string): never {
  throw new B158Error("E_TOKENIZER_MODEL", `cannot encode tokenizer.model: ${message}`, { details: {} });
}

/** In a u-mode regex, a surrogate range matches only unpaired halves. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

class ProtoWriter {
  private readonly bytes: number[] = [];

  private varint(value: bigint): void {
    // negative int32s are written as their 64-bit two's complement: 10 bytes (protobuf's rule)
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }
  private key(field: number, wire: number): void {
    this.varint((BigInt(field) << 3n) | BigInt(wire));
  }
  int32(field: number, value: number): void {
    if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) invalid(`field ${field} is ${value}, which is not an int32`);
    this.key(field, WIRE.varint);
    this.varint(BigInt(value));
  }
  float(field: number, value: number): void {
    this.key(field, WIRE.fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    for (const byte of b) this.bytes.push(byte);
  }
  string(field: number, value: string): void {
    if (LONE_SURROGATE.test(value)) invalid(`${JSON.stringify(value)} holds a lone surrogate, which UTF-8 cannot encode`);
    this.raw(field, new TextEncoder().encode(value));
  }
  message(field: number, inner: ProtoWriter): void {
    this.raw(field, inner.finish());
  }
  private raw(field: number, data: Uint8Array): void {
    this.key(field, WIRE.bytes);
    this.varint(BigInt(data.byteLength));
    for (const b of data) this.bytes.push(b);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}
