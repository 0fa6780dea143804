import { B158Error } from "../errors.js";
import type { Tiling } from "./layouts.js";

/**
 * bitnet.cpp's include/kernel_config.ini (written by codegen_tl1.py / codegen_tl2.py): one INI
 * section per kernel shape with keys m, k, bm, bk, bmm (ConfigParser lower-cases keys). b158 reads
 * it so users can pack for exactly the kernels they built.
 */
export interface KernelConfig {
  readonly file: string;
  /** Tilings keyed "M,K" (M = output features, K = input features). */
  readonly tilings: ReadonlyMap<string, Tiling>;
}

export function parseKernelConfig(text: string, file = "kernel_config.ini"): KernelConfig {
  const fail = (line: number, message: string): never => {
    throw new B158Error("E_KERNEL_CONFIG", `${file}:${line}: ${message}`, {
      details: { file, line },
      hint: "Use the kernel_config.ini that bitnet.cpp's codegen wrote for your build.",
    });
  };
  const sections: { name: string; line: number; values: Map<string, number> }[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const content = raw.replace(/[;#].*$/, "").trim();
    if (content === "") return;
    const header = /^\[([^\]]+)\]$/.exec(content);
    if (header) {
      sections.push({ name: header[1]!.trim(), line, values: new Map() });
      return;
    }
    const pair = /^([A-Za-z_][\w]*)\s*[=:]\s*(.*)$/.exec(content);
    if (!pair) return fail(line, `cannot parse ${JSON.stringify(raw.trim())}`);
    const section = sections[sections.length - 1];
    if (section === undefined) return fail(line, "key outside any [section]");
    const key = pair[1]!.toLowerCase();
    if (!/^\d+$/.test(pair[2]!.trim())) return fail(line, `${key} = ${JSON.stringify(pair[2])} is not a positive integer`);
    if (section.values.has(key)) return fail(line, `${key} appears twice in [${section.name}]`);
    section.values.set(key, Number(pair[2]));
  });
  const tilings = new Map<string, Tiling>();
  for (const section of sections) {
    const get = (key: string): number => {
      const value = section.values.get(key);
      if (value === undefined || value <= 0) return fail(section.line, `[${section.name}] has no positive "${key}"`);
      return value;
    };
    const shape = `${get("m")},${get("k")}`;
    if (tilings.has(shape)) fail(section.line, `[${section.name}] repeats the shape (${shape})`);
    tilings.set(shape, { BM: get("bm"), BK: get("bk"), bm: get("bmm") });
  }
  if (tilings.size === 0) fail(1, "holds no kernel sections");
  return { file, tilings };
}

/** Serialises tilings in codegen's format: the writer for the reader above. */
export function formatKernelConfig(tilings: ReadonlyMap<string, Tiling>): string {
  return [...tilings]
    .map(([shape, t], i) => {
      const [m, k] = shape.split(",");
      return `[Kernels_${i}]\nm = ${m}\nk = ${k}\nbm = ${t.BM}\nbk = ${t.BK}\nbmm = ${t.bm}\n`;
    })
    .join("\n");
}
