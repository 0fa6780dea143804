import { B158Error } from "../errors.js";
import { packI2S, unpackI2S } from "./i2s.js";
import type { KernelConfig } from "./kernel-config.js";
import { checkEligibility, LAYOUT_IDS, type Eligibility, type EligibilityOptions, type LayoutId, type LayoutParams } from "./layouts.js";
import { packQ2_0, unpackQ2_0 } from "./q2_0.js";
import { blockScales, describeGranularity, type TensorScale } from "./scales.js";
import { packTl1, unpackTl1 } from "./tl1.js";
import { packTl2, unpackTl2 } from "./tl2.js";
import { packTq1_0, packTq2_0, unpackTq1_0, unpackTq2_0 } from "./tq.js";
import type { DecodeContext } from "./packed-code.js";

/**
 * One entry point per direction over every layout: `(codes, shape, scale, params) -> bytes` and back.
 * The payload is exactly the bytes the target kernel reads. For TL1/TL2 the scale is not inside it
 * (bitnet.cpp stores it as the next tensor), so unpack returns it as undefined. `scale` is one value
 * or per-group scales (scales.ts); only layouts with a d per block (TQ, Q2_0) hold group scales, and
 * only groups of whole blocks: the caller checked eligibility, anything else is E_LAYOUT_SCALES.
 */
export function packLayout(params: LayoutParams, codes: Int8Array, shape: readonly [number, number], scale: TensorScale): Uint8Array {
  const [M, K] = shape;
  switch (params.layout) {
    case "i2_s":
      return packI2S(codes, M, K, tensorScale(scale, params.layout, K), params.blockSize);
    case "tl1":
      tensorScale(scale, params.layout, K);
      return packTl1(codes, M, K, params);
    case "tl2":
      tensorScale(scale, params.layout, K);
      return packTl2(codes, M, K, params);
    case "tq1_0":
      return packTq1_0(codes, M, K, blockScales(scale, M, K, params.blockSize, params.layout));
    case "tq2_0":
      return packTq2_0(codes, M, K, blockScales(scale, M, K, params.blockSize, params.layout));
    case "q2_0":
      return packQ2_0(codes, M, K, blockScales(scale, M, K, params.blockSize, params.layout));
  }
}

/** The one scale of a per-tensor layout; group scales cannot be held there. */
function tensorScale(scale: TensorScale, layout: LayoutId, K: number): number {
  if (typeof scale === "number") return scale;
  throw new B158Error("E_LAYOUT_SCALES", `${layout} holds one scale per tensor; these weights have scales ${describeGranularity(scale.groupSize, K)}`, {
    details: { layout, groupSize: scale.groupSize },
  });
}

export interface Unpacked {
  readonly codes: Int8Array;
  /** The per-tensor scale the payload holds: I2_S's f32, TQ's / Q2_0's f16 d of a nonzero block (0 if none); undefined for TL. */
  readonly scale: number | undefined;
  /** TQ and Q2_0: every block's d, in block order (group scales are read from these). */
  readonly blockScales?: Float32Array;
}

/**
 * `out`: M * K codes to decode into where the layout's unpacker takes one (I2_S, TQ, Q2_0); TL
 * ignores it. A code outside the layout's alphabet is E_PACKED_CODE naming `context`'s file and tensor.
 */
export function unpackLayout(params: LayoutParams, bytes: Uint8Array, shape: readonly [number, number], out?: Int8Array, context?: DecodeContext): Unpacked {
  const [M, K] = shape;
  switch (params.layout) {
    case "i2_s":
      return unpackI2S(bytes, M, K, params.blockSize, out, context);
    case "tl1":
      return { codes: unpackTl1(bytes, M, K, params, context), scale: undefined };
    case "tl2":
      return { codes: unpackTl2(bytes, M, K, params, context), scale: undefined };
    case "tq1_0":
    case "tq2_0":
    case "q2_0": {
      const { codes, scales } =
        params.layout === "tq1_0" ? unpackTq1_0(bytes, M, K, out, context) : params.layout === "tq2_0" ? unpackTq2_0(bytes, M, K, out, context) : unpackQ2_0(bytes, M, K, out, context);
      const nonzero = scales.find((d) => d !== 0);
      return { codes, scale: nonzero ?? 0, blockScales: scales };
    }
  }
}

/** One layout's codec, as the registry below lists them. */
export interface LayoutCodec {
  readonly id: LayoutId;
  /** Codes (one int8 in {-1, 0, 1} per weight, row-major [M, K]) to the payload; TL1/TL2 ignore `scale` (stored separately). */
  pack(codes: Int8Array, shape: readonly [number, number], scale: TensorScale, params: LayoutParams): Uint8Array;
  unpack(bytes: Uint8Array, shape: readonly [number, number], params: LayoutParams, context?: DecodeContext): Unpacked;
  /** True when the scale lives inside the payload (I2_S, TQ, Q2_0); false for TL1/TL2, whose f32 scale is a separate tensor. */
  readonly scaleInPayload: boolean;
}

function registryEntry(id: LayoutId, scaleInPayload: boolean): LayoutCodec {
  const own = (params: LayoutParams): LayoutParams => {
    if (params.layout !== id) throw new B158Error("E_INTERNAL", `${params.layout} parameters passed to the ${id} codec`, { details: { layout: id, params } });
    return params;
  };
  return {
    id,
    scaleInPayload,
    pack: (codes, shape, scale, params) => packLayout(own(params), codes, shape, scale),
    unpack: (bytes, shape, params, context) => unpackLayout(own(params), bytes, shape, undefined, context),
  };
}

/** The layouts by id; `packLayout` / `unpackLayout` dispatch on `params.layout` to the same code. */
export const LAYOUTS: Readonly<Record<LayoutId, LayoutCodec>> = {
  i2_s: registryEntry("i2_s", true),
  tl1: registryEntry("tl1", false),
  tl2: registryEntry("tl2", false),
  tq1_0: registryEntry("tq1_0", true),
  tq2_0: registryEntry("tq2_0", true),
  q2_0: registryEntry("q2_0", true),
};

export type FallbackDtype = "f32" | "f16" | "bf16";
export const FALLBACK_DTYPES = ["f32", "f16", "bf16"] as const satisfies readonly FallbackDtype[];

export type Encoding =
  | { readonly kind: "layout"; readonly params: LayoutParams; readonly payloadBytes: number }
  | { readonly kind: "fallback"; readonly dtype: FallbackDtype; readonly layout: LayoutId; readonly rule: string; readonly reason: string };

export interface EncodingOptions extends Omit<EligibilityOptions, "tiling"> {
  /** Keep ineligible tensors as this float dtype instead of failing. */
  readonly fallback?: FallbackDtype;
  /** TL tilings from a kernel_config.ini: a TL tensor whose shape it lacks is ineligible. */
  readonly kernelConfig?: KernelConfig;
}

/**
 * How a ternary tensor will be stored: in `layout`, or (with a fallback) as float with the reason.
 * Never silent: without a fallback an ineligible tensor is an E_LAYOUT_SHAPE error naming it.
 */
export function chooseEncoding(tensor: string, shape: readonly [number, number], layout: LayoutId, options: EncodingOptions = {}): Encoding {
  const [M, K] = shape;
  const { groupSize, ...shapeOptions } = options;
  let fit: Eligibility;
  if ((layout === "tl1" || layout === "tl2") && options.kernelConfig !== undefined) {
    const tiling = options.kernelConfig.tilings.get(`${M},${K}`);
    fit = tiling === undefined
      ? { eligible: false, rule: `a [${M}, ${K}] section in ${options.kernelConfig.file}`, reason: `${options.kernelConfig.file} has no kernel for M = ${M}, K = ${K}` }
      : checkEligibility(layout, shape, { ...shapeOptions, tiling });
  } else fit = checkEligibility(layout, shape, shapeOptions);
  // the shape first (E_LAYOUT_SHAPE), then the scales (E_LAYOUT_SCALES): each error names its own rule
  const scaleFit = fit.eligible && groupSize !== undefined ? checkEligibility(layout, shape, { ...shapeOptions, groupSize }) : fit;
  if (fit.eligible && scaleFit.eligible) return { kind: "layout", params: fit.params, payloadBytes: fit.payloadBytes };
  const failed = fit.eligible ? scaleFit : fit;
  if (failed.eligible) throw new B158Error("E_INTERNAL", "an eligible fit failed");
  if (options.fallback !== undefined) return { kind: "fallback", dtype: options.fallback, layout, rule: failed.rule, reason: failed.reason };
  if (fit.eligible) throw scalesError(tensor, shape, layout, groupSize!, failed.reason, failed.rule, options);
  throw new B158Error("E_LAYOUT_SHAPE", `tensor "${tensor}" [${M}, ${K}] cannot be stored as ${layout}: ${fit.reason} (rule: ${fit.rule})`, {
    hint: "Pick another layout (b158 inspect shows which fit), or pass --fallback f16 to keep such tensors as float.",
    details: { tensor, shape: [M, K], layout, rule: fit.rule, reason: fit.reason },
  });
}

/** The layouts that hold a [M, K] tensor with scales per group of `groupSize` (undefined: per tensor) exactly. */
export function layoutsHolding(shape: readonly [number, number], groupSize: number | undefined, options: EligibilityOptions = {}): LayoutId[] {
  return LAYOUT_IDS.filter((layout) => checkEligibility(layout, shape, { ...options, ...(groupSize === undefined ? {} : { groupSize }) }).eligible);
}

/** A layout that cannot hold a tensor's scales: never averaged, always an error naming the layouts that can. */
export function scalesError(tensor: string, shape: readonly [number, number], layout: LayoutId, groupSize: number, reason: string, rule: string, options: EligibilityOptions = {}): B158Error {
  const [M, K] = shape;
  const able = layoutsHolding(shape, groupSize, { ...(options.i2sVariant === undefined ? {} : { i2sVariant: options.i2sVariant }) });
  const granularity = describeGranularity(groupSize, K);
  return new B158Error("E_LAYOUT_SCALES", `tensor "${tensor}" [${M}, ${K}] has scales ${granularity}, which ${layout} cannot hold exactly: ${reason} (rule: ${rule}). Layouts that can: ${able.length > 0 ? able.join(", ") : "none for this shape"}`, {
    hint: able.length > 0 ? `Convert with --layout ${able[0]}; b158 never averages scales to fit a layout.` : "No layout holds these scales for this shape; b158 never averages scales to fit a layout.",
    details: { tensor, shape: [M, K], layout, groupSize, rule, reason, layouts: able },
  });
}
