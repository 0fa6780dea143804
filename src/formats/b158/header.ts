import { Packr } from "msgpackr";
import type { LayoutId } from "../../pack/layouts.js";
import type { B158Layout } from "./spec.js";

/** The decoded .b158 header (docs/FORMAT.md §1.2-1.4). */
export interface B158Header {
  readonly format: "b158";
  readonly model: { readonly family: string; readonly architecture: string | null; readonly config: Record<string, unknown> | null };
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly provenance: {
    readonly source: { readonly kind: "local" | "hub"; readonly repo?: string; readonly revision?: string; readonly commit?: string };
    readonly files: readonly { readonly name: string; readonly size: number; readonly sha256?: string }[];
    readonly options: B158Options;
  };
  readonly tensors: readonly B158TensorEntry[];
  readonly tool: { readonly name: string; readonly version: string };
}

export interface B158Options {
  readonly layout: LayoutId;
  readonly i2s_variant: "x86" | "arm";
  readonly fallback: "f32" | "f16" | "bf16" | null;
  readonly float_dtype: "f32" | "f16" | "bf16" | null;
  readonly embeddings: "f32" | "f16" | "bf16" | null;
  readonly ternarize: readonly string[];
  readonly kernel_config_sha256: string | null;
  /** 1.1: the source semantics the user forced with --weights; absent when they came from the checkpoint. */
  readonly weights?: "latent" | "quantized";
}

export interface B158TensorEntry {
  readonly name: string;
  readonly gguf_name: string | null;
  readonly shape: readonly number[];
  readonly role: "ternary-linear" | "embedding" | "lm-head" | "norm" | "other";
  readonly layout: B158Layout;
  readonly params: Readonly<Record<string, number | string>>;
  /** Ternary layouts, one scale per tensor. */
  readonly scale?: number;
  /** 1.1, ternary layouts with per-group scales: weights per group along K (the values are the payload's block d). */
  readonly group_size?: number;
  readonly source_dtype: string;
  readonly offset: number;
  readonly length: number;
  readonly sha256: string;
}

/** Standard MessagePack only (no msgpackr records), fixmaps where they fit, u64 back as numbers. */
const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true, int64AsType: "number" });

/** Keys sorted by UTF-8 bytes at every level; binary values and arrays kept as they are. */
function canonical(value: unknown): unknown {
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return Object.fromEntries(keys.map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export function encodeHeader(header: B158Header): Uint8Array {
  return packr.pack(canonical(header));
}

/** Decodes MessagePack; throws on malformed input (the caller maps it to E_B158_HEADER). */
export function decodeHeader(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/** Deep enough for any header (config.json nests 3-4 levels), as for JSON (strict-json.ts). */
export const MAX_HEADER_DEPTH = 64;

/** True when `value` nests arrays and maps deeper than `limit` levels; iterative, so any depth is safe to ask about. */
export function nestsDeeperThan(value: unknown, limit = MAX_HEADER_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || typeof item !== "object" || item instanceof Uint8Array) continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, depth + 1]);
  }
  return false;
}
