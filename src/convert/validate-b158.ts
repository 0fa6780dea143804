import { createHash } from "node:crypto";
import { openB158File, type B158File } from "../formats/b158/read.js";
import { fileSha256 } from "../io/file-hash.js";
import { unpackLayout } from "../pack/codec.js";
import { fromF16Bits, toF16Bits } from "../pack/float16.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { countNonFinite } from "../model/scan.js";

/**
 * What convert checks before it reports success, and `b158 validate <file.b158>` on any file:
 * every payload's sha256 and padding, every ternary payload decoded (its embedded scale against
 * the header's, its codes against what was packed when known), degenerate tensors (all-zero
 * ternary weights, NaN/Inf, zero or non-finite scales).
 */
export interface TensorFacts {
  readonly name: string;
  readonly layout: string;
  readonly parameters: number;
  readonly bytes: number;
  /** -1 / 0 / +1 counts for ternary layouts. */
  readonly counts?: readonly [number, number, number];
}

export interface B158Validation {
  readonly ok: boolean;
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
  readonly tensors: readonly TensorFacts[];
  readonly diagnostics: readonly Diagnostic[];
}

/** `expectedCodes`: sha256 of each ternary tensor's codes as packed (convert knows them). */
export async function validateB158(path: string, expectedCodes?: ReadonlyMap<string, string>): Promise<B158Validation> {
  const file = await openB158File(path);
  try {
    return await validateOpen(file, expectedCodes);
  } finally {
    await file.close();
  }
}

export async function validateOpen(file: B158File, expectedCodes?: ReadonlyMap<string, string>): Promise<B158Validation> {
  const diagnostics: Diagnostic[] = [];
  const damaged = new Set(await file.verify());
  for (const name of damaged) diagnostics.push({ severity: "error", code: "E_B158_HASH", tensor: name, message: `"${name}": payload does not match its sha256 (the file is damaged)` });
  const facts: TensorFacts[] = [];
  for (const t of file.tensors) {
    const parameters = t.shape.reduce((a, b) => a * b, 1);
    if (damaged.has(t.name)) {
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length });
      continue;
    }
    if (t.layoutParams !== undefined) {
      const payload = await file.readPayload(t.name);
      const scale = t.scale!;
      if (!Number.isFinite(scale) || scale <= 0) {
        diagnostics.push({ severity: "error", code: "E_SCALE_INVALID", tensor: t.name, message: `"${t.name}": scale ${scale} is not finite and positive` });
      }
      const { codes, scale: embedded } = unpackLayout(t.layoutParams, payload, t.shape as [number, number]);
      const counts: [number, number, number] = [0, 0, 0];
      for (let i = 0; i < codes.length; i++) counts[codes[i]! + 1]!++;
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length, counts });
      if (counts[0] + counts[2] === 0) {
        diagnostics.push({ severity: "error", code: "E_ALL_ZERO", tensor: t.name, message: `"${t.name}": every ternary weight is 0 (a degenerate tensor, like the broken 2B-4T re-upload)` });
      }
      const expectedEmbedded = t.layout === "i2_s" ? Math.fround(scale) : t.layout === "tq1_0" || t.layout === "tq2_0" ? (counts[0] + counts[2] === 0 ? 0 : fromF16Bits(toF16Bits(scale))) : undefined;
      if (expectedEmbedded !== undefined && embedded !== expectedEmbedded && Number.isFinite(scale)) {
        diagnostics.push({ severity: "error", code: "E_B158_LAYOUT", tensor: t.name, message: `"${t.name}": the scale inside the payload (${embedded}) disagrees with the header's (${scale})` });
      }
      const expected = expectedCodes?.get(t.name);
      if (expected !== undefined && createHash("sha256").update(codes).digest("hex") !== expected) {
        diagnostics.push({ severity: "error", code: "E_DECODE_MISMATCH", tensor: t.name, message: `"${t.name}": decoding the written payload does not give the codes that were packed` });
      }
    } else {
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length });
      const dtype = t.layout === "f32" ? "F32" : t.layout === "f16" ? "F16" : t.layout === "bf16" ? "BF16" : undefined;
      let bad = 0;
      // plain payloads can be huge (a 128256 x 2560 embedding): scan them in chunks
      if (dtype !== undefined) for await (const chunk of file.readPayloadChunks(t.name)) bad += countNonFinite(chunk, dtype);
      if (bad > 0) diagnostics.push({ severity: "error", code: "E_NONFINITE", tensor: t.name, message: `"${t.name}": ${bad} NaN/Inf values` });
    }
  }
  return {
    ok: !diagnostics.some((d) => d.severity === "error"),
    file: file.name,
    size: file.size,
    sha256: await fileSha256(file.name),
    tensors: facts,
    diagnostics,
  };
}
