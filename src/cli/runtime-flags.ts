import { Flags } from "@oclif/core";
import { B158Error } from "../errors.js";

/** Flags and parsing shared by the runtime's commands (eval, run). */
export const activationsFlag = Flags.option({
  options: ["int8", "float"] as const,
  default: "int8" as const,
  description: "int8: quantize each token's activations to int8 before every ternary linear, as BitNet b1.58 does (the default); float: no activation quantization, to compare with a float reference.",
})();

export const threadsFlag = Flags.integer({ min: 1, max: 256, description: "Threads for the matrix products, the main thread included (default: every core)." });

export const tokensFlag = (description: string) => Flags.string({ description, helpValue: "<id,id,...>" });

/** "1,2, 3" -> [1, 2, 3]; anything else is E_USAGE. */
export function parseTokenList(value: string, flag = "--tokens"): number[] {
  const parts = value.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new B158Error("E_USAGE", `${flag} needs a comma-separated list of token ids, e.g. 1,2,3`);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p))) throw new B158Error("E_USAGE", `${flag}: "${p}" is not a token id (a non-negative integer)`);
    return Number(p);
  });
}

/** A finite number flag value, or E_USAGE naming the flag. */
export function parseNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new B158Error("E_USAGE", `${flag}: "${value}" is not a number`);
  return n;
}
