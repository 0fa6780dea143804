import type { Diagnostic } from "../../model/diagnostics.js";
import type { DenseWeightInput, DenseWeightSource, PayloadReader, TernaryWeightInput } from "../kernels/api.js";
import type { GlobalRole, LayerRole } from "../architectures.js";
import type { ModelSpec } from "../spec.js";

/**
 * Where a model's weights come from: a .b158, a Hugging Face checkpoint or a GGUF. A source reads
 * each tensor by its own format's semantics and hands it over in the kernels' terms; the model
 * (../model.ts) passes it to the kernels and drops it, one tensor at a time.
 */
export type LinearWeight =
  /** `bitnet` (default true): the framework quantizes the input (BitNet); false: a plain nn.Linear holding ternary weights (fake-quantized models). */
  | { readonly kind: "ternary"; readonly weight: TernaryWeightInput; readonly bitnet?: boolean }
  /**
   * A linear held as floats: `bitnet` when the framework quantizes its input (a BitNet linear
   * stored unpacked, e.g. a --fallback tensor), false for a plain float linear (a model that is not
   * ternary, or a module BitNet leaves out).
   */
  | { readonly kind: "dense"; readonly weight: DenseWeightInput; readonly bitnet: boolean };

/** A model's tokenizer files, as the checkpoint ships them. */
export interface TokenizerFiles {
  readonly tokenizerJson?: string;
  readonly tokenizerConfig?: string;
  readonly tokenizerModel?: Uint8Array;
}

export type SourceKind = "b158" | "checkpoint" | "gguf";

export interface ModelSource {
  readonly label: string;
  readonly kind: SourceKind;
  readonly spec: ModelSpec;
  readonly tokenizerFiles: TokenizerFiles;
  /** True for a .b158 made by post-training ternarization of a model not trained ternary (--ternarize). */
  readonly lossy: boolean;
  /** How weights were read (assumptions, conventions), for reports. */
  readonly diagnostics: readonly Diagnostic[];
  /** A norm's weight vector (a layer role, or the final norm). */
  vector(role: LayerRole | "norm", layer?: number): Promise<Float32Array>;
  linear(role: LayerRole, layer: number): Promise<LinearWeight>;
  /** The token embedding, or a separate output head: floats, or ternary (a ternary source's, kept ternary); payloads may still be in the file. */
  matrix(role: Exclude<GlobalRole, "norm">): Promise<DenseWeightInput | TernaryWeightInput>;
  close(): Promise<void>;
}

/** A 2-byte-element view of `bytes`, copying once when the buffer offset is odd. */
export function uint16View(bytes: Uint8Array): Uint16Array {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1);
}

/** A 4-byte-element view of `bytes`, copying once when the buffer offset is not a multiple of 4. */
export function float32View(bytes: Uint8Array): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2);
}

/** Little-endian float bytes of `dtype` as a dense kernel weight; `toFloat32` converts anything else. */
export function denseFromBytes(
  bytes: Uint8Array,
  dtype: string,
  rows: number,
  cols: number,
  toFloat32: (bytes: Uint8Array) => Float32Array,
): DenseWeightSource {
  switch (dtype.toLowerCase()) {
    case "f32":
      return { kind: "f32", rows, cols, values: float32View(bytes) };
    case "f16":
      return { kind: "f16", rows, cols, bits: uint16View(bytes) };
    case "bf16":
      return { kind: "bf16", rows, cols, bits: uint16View(bytes) };
    default:
      return { kind: "f32", rows, cols, values: toFloat32(bytes) };
  }
}

/** A payload the kernels read in pieces: `read(offset, into)` of a file region of `byteLength` bytes. */
export function payloadReader(byteLength: number, read: (offset: number, into: Uint8Array) => Promise<void>): PayloadReader {
  return { byteLength, read };
}

/**
 * A float matrix stored as little-endian f32, f16 or bf16 rows: left in its file for the kernels to
 * read (`reader`); any other dtype is read and converted here (`bytes`, `toFloat32`).
 */
export async function denseInput(
  dtype: string,
  rows: number,
  cols: number,
  reader: PayloadReader,
  bytes: () => Promise<Uint8Array>,
  toFloat32: (bytes: Uint8Array) => Float32Array,
): Promise<DenseWeightInput> {
  const kind = dtype.toLowerCase();
  if (kind === "f32" || kind === "f16" || kind === "bf16") return { kind, rows, cols, payload: reader };
  return denseFromBytes(await bytes(), dtype, rows, cols, toFloat32);
}
