import type { Checkpoint, CheckpointTensor } from "../checkpoint/open.js";
import type { HfConfig } from "../formats/hf-config/read.js";
import type { Diagnostic } from "./diagnostics.js";

/**
 * Checkpoints b158 recognises and will not convert, and why (the GGUF half is
 * src/formats/gguf/refusals.ts). Both quantize group-wise affinely, as MLX does: every linear (and
 * the embedding) is `weight` uint32 words of packed codes, with a `scales` and a `biases` tensor of
 * one value per group of G weights along K: w = q x scale + bias.
 * - PrismML 1-bit (`quantization_config.quant_method: "prism"`, or MLX's `quantization: {bits: 1}`):
 *   one bit per weight, w = bit x scale + bias: two levels per group, binary, not ternary.
 * - MLX affine 2-bit (`quantization: {bits: 2, group_size: G}`): four codes 0..3 per group value.
 *   Ternary only where bias = -scale and code 3 never occurs; b158 does not read MLX's packing, so
 *   the message says which it is and where the ternary weights are published unpacked.
 * Any other MLX bit width is not ternary either. The plan reports E_FORMAT_REFUSED; convert, eval
 * and the runtime stop with it.
 */

/** A linear or embedding stored as MLX affine codes: uint32 words, with `scales` and `biases` siblings. */
export function affineQuantized(tensors: ReadonlyMap<string, CheckpointTensor>): string[] {
  const out: string[] = [];
  for (const [name, t] of tensors) {
    if (!name.endsWith(".weight") || t.dtype !== "U32") continue;
    const module = name.slice(0, -".weight".length);
    if (tensors.has(`${module}.scales`) && tensors.has(`${module}.biases`)) out.push(name);
  }
  // linears first: they name the format best
  const linear = (n: string) => (/_proj\.weight$/.test(n) ? 0 : 1);
  return out.sort((a, b) => linear(a) - linear(b));
}

/** What a bounded read of the first row of an affine 2-bit weight shows. */
export interface AffineSample {
  readonly tensor: string;
  /** Every group read has bias == -scale (bit for bit) and no code 3. */
  readonly ternary: boolean;
  readonly detail: string;
}

const HALF_DTYPES = ["F16", "BF16"];

/**
 * Reads the first row of `weight` (K/16 uint32 words of 2-bit codes, element j at bits 2*(j%16) of
 * word j/16) and of its scales and biases (K/G values), and says whether that row is ternary:
 * bias = -scale in every group and no code 3 (then w = (q - 1) x scale, q in {0, 1, 2}).
 */
export async function sampleAffine2Bit(checkpoint: Checkpoint, weight: string): Promise<AffineSample | undefined> {
  const module = weight.slice(0, -".weight".length);
  const w = checkpoint.tensorsByName.get(weight);
  const scales = checkpoint.tensorsByName.get(`${module}.scales`);
  const biases = checkpoint.tensorsByName.get(`${module}.biases`);
  if (w === undefined || scales === undefined || biases === undefined) return undefined;
  if (w.shape.length !== 2 || scales.shape.length !== 2 || biases.shape.length !== 2) return undefined;
  if (!HALF_DTYPES.includes(scales.dtype) || scales.dtype !== biases.dtype) return undefined;
  const words = w.shape[1]!;
  const groups = scales.shape[1]!;
  if (biases.shape[1] !== groups || groups === 0 || words === 0 || words > 1 << 20 || groups > 1 << 20) return undefined;
  const read = async (t: CheckpointTensor, bytes: number) => (await checkpoint.source(t.shard)).read(t.fileOffset, bytes);
  const codes = new DataView((await read(w, words * 4)).slice().buffer);
  const s = new DataView((await read(scales, groups * 2)).slice().buffer);
  const b = new DataView((await read(biases, groups * 2)).slice().buffer);
  let code3 = 0;
  for (let i = 0; i < words; i++) {
    const word = codes.getUint32(4 * i, true);
    for (let j = 0; j < 16; j++) if (((word >>> (2 * j)) & 3) === 3) code3++;
  }
  let offset = 0;
  for (let g = 0; g < groups; g++) if ((s.getUint16(2 * g, true) ^ 0x8000) !== b.getUint16(2 * g, true)) offset++;
  const ternary = code3 === 0 && offset === 0;
  const detail = ternary
    ? `the first row of "${weight}" is ternary (every group has bias = -scale, no code 3)`
    : `the first row of "${weight}" is not ternary (${code3} codes 3, ${offset} of ${groups} groups with bias != -scale)`;
  return { tensor: weight, ternary, detail };
}

/** The refusal of a checkpoint, or undefined when b158 can convert it. */
export function checkpointRefusal(config: HfConfig | undefined, tensors: ReadonlyMap<string, CheckpointTensor>, sample?: AffineSample): Diagnostic | undefined {
  const affine = config?.affineQuantization;
  const prism = config?.quantization?.quantMethod === "prism";
  const packed = affineQuantized(tensors);
  if (!prism && affine === undefined && packed.length === 0) return undefined;
  const bits = affine?.bits ?? (prism ? 1 : inferBits(tensors, packed[0]));
  const group = affine?.groupSize ?? inferGroup(tensors, packed[0]);
  const declared = prism ? `quantization_config.quant_method "prism"` : affine !== undefined ? `${affine.key}: {bits: ${affine.bits}, group_size: ${affine.groupSize}}` : "no quantization in config.json";
  const storage =
    packed.length > 0
      ? `${packed.length} tensor${packed.length === 1 ? "" : "s"} (first "${packed[0]}") are uint32 words of ${bits === undefined ? "packed" : `${bits}-bit`} codes with a scales and a biases tensor per group of ${group ?? "G"} weights (w = q x scale + bias)`
      : "the weights are quantized group-wise (w = q x scale + bias)";
  let message: string;
  let hint: string;
  if (prism || bits === 1) {
    message = `a PrismML 1-bit checkpoint (${declared}): ${storage}, one bit per weight: binary 1-bit affine weights (1-bit Bonsai), not ternary {-1, 0, +1}. b158 converts ternary models only`;
    hint = "Run it with PrismML's runtimes; for a ternary model use a Ternary-Bonsai checkpoint.";
  } else if (bits === 2) {
    const ternary = sample === undefined ? "" : sample.ternary ? `; ${sample.detail}, so the values are ternary x scale` : `; ${sample.detail}`;
    message = `an MLX affine 2-bit checkpoint (${declared}): ${storage}${ternary}. b158 does not read MLX's packing`;
    hint = sample?.ternary
      ? "Convert the unpacked safetensors release of the same model (Ternary-Bonsai publishes *-unpacked), which b158 reads as fake-quantized ternary weights."
      : "MLX 2-bit weights with four levels are not ternary; convert a ternary checkpoint instead.";
  } else {
    message = `an MLX affine ${bits ?? "?"}-bit checkpoint (${declared}): ${storage}: ${bits === undefined ? "group-wise affine" : `${bits}-bit`} weights, not ternary {-1, 0, +1}. b158 converts ternary models only`;
    hint = "Convert the model's unquantized or ternary safetensors release instead.";
  }
  return { severity: "error", code: "E_FORMAT_REFUSED", message: `${message}. ${hint}`, ...(packed[0] === undefined ? {} : { tensor: packed[0] }) };
}

/** Bits per weight from the packed width: in/32 words per row at 1 bit, in/16 at 2. */
function inferBits(tensors: ReadonlyMap<string, CheckpointTensor>, weight: string | undefined): number | undefined {
  if (weight === undefined) return undefined;
  const module = weight.slice(0, -".weight".length);
  const words = tensors.get(weight)!.shape[1];
  const groups = tensors.get(`${module}.scales`)!.shape[1];
  if (words === undefined || groups === undefined) return undefined;
  // in = groups x G; words = in x bits / 32: unknown G, so only the common MLX group sizes decide
  for (const G of [64, 128, 32]) {
    const bits = (words * 32) / (groups * G);
    if (Number.isInteger(bits) && [1, 2, 3, 4, 5, 6, 8].includes(bits)) return bits;
  }
  return undefined;
}

function inferGroup(tensors: ReadonlyMap<string, CheckpointTensor>, weight: string | undefined): number | undefined {
  const bits = inferBits(tensors, weight);
  if (weight === undefined || bits === undefined) return undefined;
  const module = weight.slice(0, -".weight".length);
  return (tensors.get(weight)!.shape[1]! * 32) / bits / tensors.get(`${module}.scales`)!.shape[1]!;
}
