import { B158Error } from "../../errors.js";
import { FIELD, PIECE_TYPE, WIRE, type PieceType, type SentencePiece, type SentencePieceModel } from "./model.js";

/** Far above any real vocabulary (Gemma's 256K); bounds work on hostile files. */
export const MAX_PIECES = 4_000_000;

/** Decodes a tokenizer.model. Strict: lengths are checked against the buffer, unknown fields skipped by wire type. */
export function decodeSentencePieceModel(bytes: Uint8Array, file = "tokenizer.model"): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  const trainer = { modelType: 1, vocabSize: 0, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  const normalizer = { name: "", addDummyPrefix: true, removeExtraWhitespaces: true };
  const top = new ProtoReader(bytes, file);
  while (!top.done()) {
    const { field, wire } = top.key();
    if (field === FIELD.model.pieces && wire === WIRE.bytes) {
      if (pieces.length >= MAX_PIECES) top.fail(`more than ${MAX_PIECES} pieces`);
      pieces.push(readPiece(top.sub()));
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
        if (k.field === FIELD.normalizer.name && k.wire === WIRE.bytes) normalizer.name = r.string();
        else if (k.field === FIELD.normalizer.addDummyPrefix && k.wire === WIRE.varint) normalizer.addDummyPrefix = r.int32() !== 0;
        else if (k.field === FIELD.normalizer.removeExtraWhitespaces && k.wire === WIRE.varint) normalizer.removeExtraWhitespaces = r.int32() !== 0;
        else r.skip(k.wire);
      }
    } else top.skip(wire);
  }
  if (pieces.length === 0) top.fail("holds no pieces");
  return { pieces, trainer, normalizer };
}

function readPiece(r: ProtoReader): SentencePiece {
  let piece = "";
  let score = 0;
  let type: PieceType = PIECE_TYPE.NORMAL;
  while (!r.done()) {
    const { field, wire } = r.key();
    if (field === FIELD.piece.piece && wire === WIRE.bytes) piece = r.string();
    else if (field === FIELD.piece.score && wire === WIRE.fixed32) score = r.float();
    else if (field === FIELD.piece.type && wire === WIRE.varint) {
      const t = r.int32();
      if (t < 1 || t > 6) r.fail(`piece "${piece}" has unknown type ${t}`);
      type = t as PieceType;
    } else r.skip(wire);
  }
  return { piece, score, type };
}

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
    throw new B158Error("E_TOKENIZER_MODEL", `${this.file}: ${message} (byte ${this.position})`, {
      details: { file: this.file, position: this.position },
      hint: "tokenizer.model is corrupt or not a SentencePiece model.",
    });
  }
  done(): boolean {
    return this.position >= this.end;
  }
  private varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.position >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.position++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    return this.fail("varint longer than 10 bytes");
  }
  key(): { field: number; wire: number } {
    const k = this.varint();
    if (k > 0xffffffffn) this.fail("field key out of range");
    return { field: Number(k >> 3n), wire: Number(k & 7n) };
  }
  int32(): number {
    return Number(BigInt.asIntN(32, this.varint()));
  }
  float(): number {
    if (this.position + 4 > this.end) this.fail("truncated float");
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.position, 4).getFloat32(0, true);
    this.position += 4;
    return value;
  }
  private length(): number {
    const n = this.varint();
    if (n > BigInt(this.end - this.position)) this.fail(`length ${n} runs past the end`);
    return Number(n);
  }
  string(): string {
    const n = this.length();
    const text = this.bytes.subarray(this.position, this.position + n);
    this.position += n;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(text);
    } catch {
      return this.fail("piece is not valid UTF-8");
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
    else this.fail(`unsupported wire type ${wire}`);
  }
  private advance(n: number): void {
    if (this.position + n > this.end) this.fail("truncated field");
    this.position += n;
  }
}
