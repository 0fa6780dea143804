import { attentionKernel } from "./gen-attention.js";
import { denseGemmKernel, denseKernel } from "./gen-dense.js";
import { relu2GateKernel, rmsNormKernel } from "./gen-elementwise.js";
import { actBlockSums, actInterleave4, actPad, actPadF64, actQuantize, actSplit16, actWiden16, denseQuantRows, dispatcher, f16NonFinite, hasCode3, relayCodes, thresholdCodes } from "./gen-support.js";
import { TERNARY_VARIANTS, actTelescope, ternaryFloat, ternaryGemm, ternaryGemv, ternaryGemvRelaxed, unpackCodes16, unpackCodesF64 } from "./gen-ternary.js";
import { DenseLayout, KERNEL } from "./layout.js";

/**
 * The kernels' WebAssembly text, generated at build time (scripts/build-wasm.mjs assembles it with
 * wabt into dist/). Two modules: "simd128" uses only standard SIMD128 and runs on every Node 20+
 * and browser; "relaxed" adds the relaxed-SIMD kernels and validates only where relaxed SIMD is on.
 * Both import one shared memory (threads share it) and export the same functions; in "simd128" the
 * relaxed table entries trap.
 */
export type KernelModuleKind = "simd128" | "relaxed";

export function generateKernelModule(kind: KernelModuleKind): string {
  const relaxed = kind === "relaxed";
  const funcs: string[] = [];
  const table: string[] = new Array<string>(KERNEL.count).fill("$fault");
  for (const v of TERNARY_VARIANTS) {
    funcs.push(actTelescope(v), unpackCodes16(v), unpackCodesF64(v), ternaryGemv(v), ternaryGemm(v), ternaryFloat(v));
    table[KERNEL.ternaryGemv + v.layout] = `$ternary_gemv_${v.name}`;
    table[KERNEL.ternaryGemm + v.layout] = `$ternary_gemm_${v.name}`;
    table[KERNEL.ternaryFloat + v.layout] = `$ternary_float_${v.name}`;
    if (relaxed) {
      funcs.push(ternaryGemvRelaxed(v));
      table[KERNEL.ternaryGemvRelaxed + v.layout] = `$ternary_gemv_relaxed_${v.name}`;
    }
  }
  for (const [name, layout] of Object.entries(DenseLayout)) {
    funcs.push(denseKernel(layout, name));
    table[KERNEL.dense + layout] = `$dense_${name}`;
    if (layout === DenseLayout.int8Rows) continue;
    funcs.push(denseGemmKernel(layout, name));
    table[KERNEL.denseGemm + layout] = `$dense_gemm_${name}`;
  }
  funcs.push(attentionKernel(), rmsNormKernel(), relu2GateKernel());
  table[KERNEL.attention] = "$attention";
  table[KERNEL.rmsNorm] = "$rms_norm";
  table[KERNEL.relu2Gate] = "$relu2_gate";
  return `(module
(import "env" "memory" (memory 1 65536 shared))
(type $kernel (func (param i32 i32 i32 i32)))
${dispatcher(KERNEL.count)}
(elem (i32.const 0) ${table.join(" ")})
${[actQuantize, actPad, actPadF64, actSplit16, actInterleave4, actWiden16, actBlockSums, hasCode3, f16NonFinite, relayCodes, thresholdCodes, denseQuantRows].join("\n")}
${funcs.join("\n")}
)`;
}
