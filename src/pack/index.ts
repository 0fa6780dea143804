/** src/pack: ternarization and layout packers. Pure functions over typed arrays; no I/O. */
export { ABSMEAN_FLOOR, AbsmeanAccumulator, TernaryCoder, ternarize, type LatentDtype, type TernaryScale } from "./ternarize.js";
export {
  checkEligibility,
  computeTl1Tiling,
  computeTl2Tiling,
  isLayoutId,
  LAYOUT_IDS,
  tl2PayloadBytes,
  type Eligibility,
  type EligibilityOptions,
  type LayoutId,
  type LayoutParams,
  type Tiling,
  type TilingSource,
} from "./layouts.js";
export {
  chooseEncoding,
  FALLBACK_DTYPES,
  LAYOUTS,
  layoutsHolding,
  packLayout,
  unpackLayout,
  type Encoding,
  type EncodingOptions,
  type FallbackDtype,
  type LayoutCodec,
  type Unpacked,
} from "./codec.js";
export { applyScale, describeGranularity, isGroupScales, scaleAt, type GroupScales, type TensorScale } from "./scales.js";
export { readStored, StoredTernaryReader } from "./stored.js";
export { packQ2_0, unpackQ2_0 } from "./q2_0.js";
export { formatKernelConfig, parseKernelConfig, type KernelConfig } from "./kernel-config.js";
export { packHfPacked, unpackHfPacked, countInvalidPackedCodes } from "./hf-packed.js";
export { packI2S, unpackI2S } from "./i2s.js";
export { packTl1, unpackTl1 } from "./tl1.js";
export { packTl2, unpackTl2 } from "./tl2.js";
export { packTq1_0, packTq2_0, unpackTq1_0, unpackTq2_0 } from "./tq.js";
export { packedCodeError, type DecodeContext } from "./packed-code.js";
export { repackLinear, scaleFromWeightScale, type PackedConvention } from "./repack.js";
export { dequantizeQ8_0, quantizeQ8_0, Q8_0_BLOCK, Q8_0_BLOCK_BYTES } from "./q8_0.js";
