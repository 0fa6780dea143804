import type { KernelContext, KernelOptions } from "./api.js";
import { createReferenceKernels } from "./reference.js";

export type * from "./api.js";
export { createReferenceKernels, quantizeActivations } from "./reference.js";

/**
 * The fastest backend this process can run, unless `options.backend` names one. Today only the
 * TypeScript reference exists; WebAssembly backends join here, feature-detected and self-tested.
 */
export async function createKernels(options: KernelOptions = {}): Promise<KernelContext> {
  const backend = options.backend ?? "auto";
  if (backend === "auto" || backend === "ts") return createReferenceKernels();
  throw new Error(`kernel backend ${backend} is not available`);
}
