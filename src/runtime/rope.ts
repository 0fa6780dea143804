import type { ModelSpec } from "./spec.js";

/**
 * Rotary position embedding as transformers computes it: inv_freq[i] = theta^(-2i / headDim),
 * rescaled by rope_scaling (linear, or Llama 3's frequency-dependent rule), angle = position x
 * inv_freq[i]. Angles and their cosines are computed in float64.
 */
export function inverseFrequencies(spec: ModelSpec): Float64Array {
  const half = spec.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(spec.rope.theta, (2 * i) / spec.headDim);
  const scaling = spec.rope.scaling;
  if (scaling?.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factor;
  } else if (scaling?.type === "longrope") {
    // MiniCPM4's LongRoPE: position / factor[i] x inv_freq[i]
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factors[i]!;
  } else if (scaling?.type === "llama3") {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowWavelength = originalMaxPositions / lowFreqFactor;
    const highWavelength = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelength = (2 * Math.PI) / inv[i]!;
      if (wavelength > lowWavelength) inv[i] = inv[i]! / factor;
      else if (wavelength >= highWavelength) {
        const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i]! / factor) + smooth * inv[i]!;
      }
    }
  }
  return inv;
}

/**
 * cos and sin of every angle for `count` positions from `start`, [count, headDim / 2] each, times
 * `magnitude` (LongRoPE's attention factor scales both; 1 otherwise).
 */
export function ropeTables(inv: Float64Array, start: number, count: number, cos: Float64Array, sin: Float64Array, magnitude = 1): void {
  const half = inv.length;
  for (let t = 0; t < count; t++) {
    const position = start + t;
    for (let i = 0; i < half; i++) {
      const angle = position * inv[i]!;
      cos[t * half + i] = Math.cos(angle) * magnitude;
      sin[t * half + i] = Math.sin(angle) * magnitude;
    }
  }
}

/**
 * Rotates `heads` heads of token t's vector in place (x[t * heads * headDim ...]). "half" pairs
 * element i with i + headDim/2 (transformers' rotate_half); "interleaved" pairs 2i with 2i + 1
 * (llama.cpp's NORM rope, for rows a GGUF converter permuted).
 */
export function applyRope(x: Float32Array, t: number, heads: number, headDim: number, cos: Float64Array, sin: Float64Array, layout: "half" | "interleaved"): void {
  const half = headDim / 2;
  const table = t * half;
  for (let h = 0; h < heads; h++) {
    const base = (t * heads + h) * headDim;
    for (let i = 0; i < half; i++) {
      const c = cos[table + i]!;
      const s = sin[table + i]!;
      const ia = layout === "half" ? base + i : base + 2 * i;
      const ib = layout === "half" ? base + i + half : base + 2 * i + 1;
      const a = x[ia]!;
      const b = x[ib]!;
      x[ia] = a * c - b * s;
      x[ib] = b * c + a * s;
    }
  }
}
