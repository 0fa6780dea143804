import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { KernelModuleKind } from "./generate.js";

/**
 * The built kernel modules (dist/runtime/kernels/wasm/kernels-*.wasm, made by `npm run build`).
 * Next to this file once compiled; from the TypeScript sources (tests, the bench) in dist/.
 */
const CANDIDATES = ["./", "../../../../dist/runtime/kernels/wasm/"];

export function kernelModuleBytes(kind: KernelModuleKind): Uint8Array | undefined {
  for (const dir of CANDIDATES) {
    try {
      return readFileSync(fileURLToPath(new URL(`${dir}kernels-${kind}.wasm`, import.meta.url)));
    } catch {
      // try the next place
    }
  }
  return undefined;
}

/**
 * Whether this engine validates the relaxed module; on Node 20 (V8 11.3) relaxed SIMD sits behind
 * --experimental-wasm-relaxed-simd, which this turns on (process-wide) if it is not on already.
 * Newer engines have it on by default.
 */
export async function relaxedSimdAvailable(bytes: Uint8Array): Promise<{ available: boolean; how: string }> {
  if (WebAssembly.validate(bytes)) return { available: true, how: "relaxed SIMD is on in this engine" };
  try {
    const v8 = await import("node:v8");
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return { available: false, how: "relaxed SIMD is off and cannot be enabled here" };
  }
  if (WebAssembly.validate(bytes)) return { available: true, how: "relaxed SIMD enabled with --experimental-wasm-relaxed-simd" };
  return { available: false, how: "this engine does not validate relaxed SIMD" };
}
