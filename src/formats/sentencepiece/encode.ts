import { B158Error } from "../../errors.js";
import { MODEL_TYPE, PIECE_TYPE, type SentencePieceModel } from "./spec.js";

/**
 * SentencePiece's BPE encoding (bpe_model.cc) over a decoded tokenizer.model, for the LLaMA-style
 * models BitNet checkpoints ship (1bitLLM):
 * 1. normalize: NFKC for the nmt_nfkc normalizers (identity leaves text alone), collapse and trim
 *    whitespace when remove_extra_whitespaces, prefix one space when add_dummy_prefix, and spell
 *    every space as U+2581 "▁";
 * 2. split into characters, user-defined pieces kept whole;
 * 3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score (the
 *    leftmost on ties), skipping unused pieces;
 * 4. symbols that are not pieces become their UTF-8 bytes' <0xXX> pieces (byte_fallback), else unk.
 * Unigram, word and char models are refused (E_MODEL_UNSUPPORTED): no BitNet checkpoint uses them.
 */
export const SPACE = "\u2581";

interface Candidate {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  /** Lengths when queued: a changed symbol makes the candidate stale. */
  readonly size: number;
}

export class SentencePieceEncoder {
  private readonly ids = new Map<string, number>();
  private readonly scores: Float32Array;
  private readonly userDefined: string[];
  private readonly byteIds: (number | undefined)[] = new Array(256).fill(undefined);
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(readonly model: SentencePieceModel) {
    if (model.trainer.modelType !== MODEL_TYPE.BPE) {
      throw new B158Error("E_MODEL_UNSUPPORTED", `tokenizer.model is a SentencePiece model of type ${model.trainer.modelType}; the runtime encodes BPE models (type 2) only`, {
        hint: "Pass token ids (--tokens) instead of text.",
      });
    }
    this.scores = Float32Array.from(model.pieces, (p) => p.score);
    model.pieces.forEach((p, id) => {
      if (p.type === PIECE_TYPE.NORMAL || p.type === PIECE_TYPE.USER_DEFINED || p.type === PIECE_TYPE.UNUSED) {
        if (!this.ids.has(p.piece)) this.ids.set(p.piece, id);
      }
      if (p.type === PIECE_TYPE.BYTE) {
        const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(p.piece);
        if (match !== null) this.byteIds[Number.parseInt(match[1]!, 16)] ??= id;
      }
    });
    this.userDefined = model.pieces.filter((p) => p.type === PIECE_TYPE.USER_DEFINED && p.piece.length > 0).map((p) => p.piece).sort((a, b) => b.length - a.length);
  }

  normalize(text: string): string {
    const { name, removeExtraWhitespaces, addDummyPrefix } = this.model.normalizer;
    let s = name.startsWith("nmt_nfkc") || name === "nfkc" ? text.normalize("NFKC") : text;
    if (name.endsWith("_cf")) s = s.toLowerCase();
    if (removeExtraWhitespaces) s = s.replace(/ +/g, " ").replace(/^ | $/g, "");
    if (s.length === 0) return s;
    if (addDummyPrefix) s = ` ${s}`;
    return s.replaceAll(" ", SPACE);
  }

  encode(text: string): number[] {
    const normalized = this.normalize(text);
    const symbols = this.split(normalized);
    const n = symbols.length;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const heap: Candidate[] = [];
    const consider = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const merged = symbols[left]! + symbols[right]!;
      const id = this.ids.get(merged);
      if (id === undefined || this.model.pieces[id]!.type === PIECE_TYPE.UNUSED) return;
      push(heap, { left, right, score: this.scores[id]!, size: merged.length });
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    while (heap.length > 0) {
      const best = pop(heap);
      const { left, right } = best;
      // stale: a side was merged away or changed since this pair was queued
      if (symbols[left]!.length === 0 || symbols[right]!.length === 0 || next[left] !== right || symbols[left]!.length + symbols[right]!.length !== best.size) continue;
      symbols[left] = symbols[left]! + symbols[right]!;
      symbols[right] = "";
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      consider(prev[left]!, left);
      consider(left, next[left]!);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]!) {
      const symbol = symbols[i]!;
      const id = this.ids.get(symbol);
      if (id !== undefined && this.model.pieces[id]!.type !== PIECE_TYPE.UNUSED) {
        out.push(id);
        continue;
      }
      const bytes = new TextEncoder().encode(symbol);
      const viaBytes = this.model.trainer.byteFallback && [...bytes].every((b) => this.byteIds[b] !== undefined);
      if (viaBytes) for (const b of bytes) out.push(this.byteIds[b]!);
      else out.push(this.model.trainer.unkId);
    }
    return out;
  }

  /** Characters (code points), with user-defined pieces as single symbols. */
  private split(text: string): string[] {
    const symbols: string[] = [];
    let i = 0;
    while (i < text.length) {
      const user = this.userDefined.find((p) => text.startsWith(p, i));
      if (user !== undefined) {
        symbols.push(user);
        i += user.length;
        continue;
      }
      const c = String.fromCodePoint(text.codePointAt(i)!);
      symbols.push(c);
      i += c.length;
    }
    return symbols;
  }

  /** Text of `ids`: pieces with "▁" as spaces, byte pieces as UTF-8, control and unknown pieces dropped; the dummy prefix space removed. */
  decode(ids: readonly number[], options: { readonly stripPrefix?: boolean } = {}): string {
    const bytes: number[] = [];
    const encoder = new TextEncoder();
    for (const id of ids) {
      const piece = this.model.pieces[id];
      if (piece === undefined || piece.type === PIECE_TYPE.CONTROL || piece.type === PIECE_TYPE.UNKNOWN) continue;
      if (piece.type === PIECE_TYPE.BYTE) {
        const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece.piece);
        if (match !== null) bytes.push(Number.parseInt(match[1]!, 16));
        continue;
      }
      for (const b of encoder.encode(piece.piece)) bytes.push(b);
    }
    // byte pieces can spell "▁" too (a model without a "▁" piece): spaces are replaced after bytes join
    const text = this.decoder.decode(Uint8Array.from(bytes)).replaceAll(SPACE, " ");
    const strip = (options.stripPrefix ?? true) && this.model.normalizer.addDummyPrefix;
    return strip && text.startsWith(" ") ? text.slice(1) : text;
  }
}

/** Max-heap on score, then the leftmost pair. */
function before(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

function push(heap: Candidate[], c: Candidate): void {
  heap.push(c);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i]!, heap[parent]!)) break;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function pop(heap: Candidate[]): Candidate {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < heap.length && before(heap[l]!, heap[best]!)) best = l;
      if (r < heap.length && before(heap[r]!, heap[best]!)) best = r;
      if (best === i) break;
      [heap[i], heap[best]] = [heap[best]!, heap[i]!];
      i = best;
    }
  }
  return top;
}
