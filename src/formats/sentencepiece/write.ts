import { FIELD, WIRE, type SentencePieceModel } from "./model.js";

/** Encodes a SentencePieceModel as protobuf bytes (a tokenizer.model file). Deterministic. */
export function encodeSentencePieceModel(model: SentencePieceModel): Uint8Array {
  const out = new ProtoWriter();
  for (const piece of model.pieces) {
    const p = new ProtoWriter();
    p.string(FIELD.piece.piece, piece.piece);
    p.float(FIELD.piece.score, piece.score);
    p.int(FIELD.piece.type, piece.type);
    out.message(FIELD.model.pieces, p);
  }
  const t = new ProtoWriter();
  const trainer = model.trainer;
  t.int(FIELD.trainer.modelType, trainer.modelType);
  t.int(FIELD.trainer.vocabSize, trainer.vocabSize);
  t.int(FIELD.trainer.byteFallback, trainer.byteFallback ? 1 : 0);
  t.int(FIELD.trainer.unkId, trainer.unkId);
  t.int(FIELD.trainer.bosId, trainer.bosId);
  t.int(FIELD.trainer.eosId, trainer.eosId);
  t.int(FIELD.trainer.padId, trainer.padId);
  out.message(FIELD.model.trainerSpec, t);
  const n = new ProtoWriter();
  n.string(FIELD.normalizer.name, model.normalizer.name);
  n.int(FIELD.normalizer.addDummyPrefix, model.normalizer.addDummyPrefix ? 1 : 0);
  n.int(FIELD.normalizer.removeExtraWhitespaces, model.normalizer.removeExtraWhitespaces ? 1 : 0);
  out.message(FIELD.model.normalizerSpec, n);
  return out.finish();
}

class ProtoWriter {
  private readonly bytes: number[] = [];

  private varint(value: bigint): void {
    // int32 fields encode negatives as 10-byte two's-complement varints (protobuf's rule)
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }
  private key(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }
  int(field: number, value: number): void {
    this.key(field, WIRE.varint);
    this.varint(BigInt(value));
  }
  float(field: number, value: number): void {
    this.key(field, WIRE.fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.bytes.push(...b);
  }
  string(field: number, value: string): void {
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
