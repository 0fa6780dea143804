import { B158Error } from "../../errors.js";
import type { KernelBackend, KernelContext, KernelOptions } from "./api.js";
import { createReferenceKernels } from "./reference.js";
import { WasmKernels } from "./wasm/backend.js";
import { kernelModuleBytes, relaxedSimdAvailable } from "./wasm/load.js";
import { selfTest } from "./wasm/self-test.js";

export type * from "./api.js";
export { createReferenceKernels, quantizeActivations } from "./reference.js";

const BACKENDS: readonly (KernelBackend | "auto")[] = ["auto", "ts", "wasm-simd128", "wasm-relaxed"];

/** Test hooks: a different environment, or a relaxed self-test made to fail. */
export interface KernelSelectionHooks {
  readonly env?: NodeJS.ProcessEnv;
  readonly corruptRelaxedSelfTest?: boolean;
}

/**
 * A kernel context. "auto" takes B158_KERNELS when set, else relaxed SIMD when the engine has it
 * (on Node 20 it is enabled here with V8's flag) and its start-up self-test matches the reference
 * bit for bit, else portable SIMD128 (self-tested too), else the TypeScript reference. The reasons
 * are in `selection`. A backend named explicitly is used or refused, never swapped.
 */
export async function createKernels(options: KernelOptions = {}, hooks: KernelSelectionHooks = {}): Promise<KernelContext> {
  const env = hooks.env ?? process.env;
  let backend = options.backend ?? "auto";
  const selection: string[] = [];
  if (backend === "auto" && env.B158_KERNELS) {
    if (!BACKENDS.includes(env.B158_KERNELS as KernelBackend)) {
      throw new B158Error("E_USAGE", `B158_KERNELS=${env.B158_KERNELS} is not a kernel backend`, { hint: `Use one of ${BACKENDS.join(", ")}.` });
    }
    backend = env.B158_KERNELS as KernelBackend | "auto";
    selection.push(`B158_KERNELS=${backend}`);
  }
  const threads = Number.isFinite(options.threads) ? Math.max(1, Math.floor(options.threads!)) : 1;
  if (backend === "ts") return withSelection(createReferenceKernels(), [...selection, "ts: the TypeScript reference"]);

  const relaxedWanted = backend === "wasm-relaxed" || (backend === "auto" && options.relaxedSimd !== false && env.B158_RELAXED_SIMD !== "0");
  if (backend === "auto" && !relaxedWanted) selection.push("relaxed SIMD turned off (relaxedSimd: false or B158_RELAXED_SIMD=0)");
  if (relaxedWanted) {
    const failure = await tryBackend("relaxed", threads, selection, hooks.corruptRelaxedSelfTest === true);
    if (typeof failure !== "string") return failure;
    if (backend === "wasm-relaxed") throw new B158Error("E_USAGE", `the wasm-relaxed kernels are not available: ${failure}`, { hint: "Use backend auto or wasm-simd128." });
  }
  if (backend === "auto" || backend === "wasm-simd128") {
    const failure = await tryBackend("simd128", threads, selection, false);
    if (typeof failure !== "string") return failure;
    if (backend === "wasm-simd128") throw new B158Error("E_USAGE", `the wasm-simd128 kernels are not available: ${failure}`, { hint: "Run `npm run build`, or use backend ts." });
  }
  return withSelection(createReferenceKernels(), [...selection, "ts: the TypeScript reference (no WebAssembly backend passed)"]);
}

/** Self-test results per module for this process (a backend is tested once), and the compiled modules. */
const tested = new Map<string, string | undefined>();
const compiled = new Map<string, WebAssembly.Module>();

async function tryBackend(kind: "simd128" | "relaxed", threads: number, selection: string[], corrupt: boolean): Promise<KernelContext | string> {
  const name = kind === "relaxed" ? "wasm-relaxed" : "wasm-simd128";
  const bytes = kernelModuleBytes(kind);
  if (bytes === undefined) return note(selection, `${name}: kernels-${kind}.wasm is not built`);
  if (kind === "relaxed") {
    const { available, how } = await relaxedSimdAvailable(bytes);
    selection.push(`${name}: ${how}`);
    if (!available) return how;
  } else if (!WebAssembly.validate(bytes)) {
    return note(selection, `${name}: this engine does not validate WebAssembly SIMD128`);
  }
  let module = compiled.get(kind);
  if (module === undefined) compiled.set(kind, (module = await WebAssembly.compile(bytes)));
  const key = corrupt ? `${kind}:corrupt` : kind;
  if (!tested.has(key) || corrupt) {
    const probe = new WasmKernels(name, module, { threads: 1 });
    try {
      tested.set(key, selfTest(probe, corrupt));
    } catch (error) {
      tested.set(key, `it threw: ${(error as Error).message}`);
    } finally {
      await probe.close();
    }
  }
  const failure = tested.get(key);
  if (failure !== undefined) return note(selection, `${name}: self-test failed (${failure})`);
  selection.push(`${name}: self-test passed; ${threads} thread${threads === 1 ? "" : "s"}`);
  return withSelection(new WasmKernels(name, module, { threads }), selection);
}

function note(selection: string[], text: string): string {
  selection.push(text);
  return text;
}

function withSelection<T extends KernelContext>(context: T, selection: readonly string[]): T {
  Object.defineProperty(context, "selection", { value: Object.freeze([...selection]), enumerable: true });
  return context;
}
