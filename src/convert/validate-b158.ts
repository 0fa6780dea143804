import { createHash } from "node:crypto";
import { B158Error } from "../errors.js";
import { openB158File, type B158File, type B158Tensor } from "../formats/b158/read.js";
import { DEFAULT_CHUNK_BYTES, fileChunks, takingTurns, type ChunkBuffers } from "../io/file-hash.js";
import { DIRECT_BLOCK } from "../io/direct-io.js";
import { alignUp } from "../formats/b158/spec.js";
import { Arena, type WasmKernels } from "../pack/wasm/kernels.js";
import { unpackLayout, type Unpacked } from "../pack/codec.js";
import { blockScaleMismatch, groupScalesFromBlocks, invalidGroupScale } from "../pack/scales.js";
import { fromF16Bits, toF16Bits } from "../pack/float16.js";
import { SCALE_BLOCK } from "../pack/layouts.js";
import { countCodes } from "../pack/swar.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { PayloadScanner, PayloadWalk, type PayloadRange, type PayloadScan } from "./payload-scan.js";
import { ScanHelper } from "./scan-helper.js";
import { ChecksumScanner, PayloadChecksum, type WrittenChecksum } from "./checksum.js";

/**
 * What convert checks before it reports success, and `b158 validate <file.b158>` on any file:
 * every payload's sha256 and padding, every ternary payload decoded (its embedded scale against
 * the header's, its codes against what was packed when known), degenerate tensors (all-zero
 * ternary weights, NaN/Inf, zero or non-finite scales).
 *
 * One sequential pass over the file hashes it whole and per payload and scans float payloads.
 * Convert passes what its workers learned: the checks made on each ternary payload in memory
 * (`PackedCheck`), so the file's ternary payloads need no second decode, and, for the payloads
 * written through the page cache, whether each read back from the file right after writing it as
 * written (its slot is its own: no later write can touch it), so this pass only adds them to the
 * whole-file hash. Payloads written with O_DIRECT were not read back: this pass, which reads every
 * byte from the disk anyway, hashes them. A file of unknown origin has its ternary payloads decoded here.
 */
export interface TensorFacts {
  readonly name: string;
  readonly layout: string;
  readonly parameters: number;
  readonly bytes: number;
  /** -1 / 0 / +1 counts for ternary layouts, when this validation decoded the payload. */
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

/** What decoding one ternary payload showed (by the converter before writing it, or by validation). */
export interface PackedCheck {
  /** Some code is not 0. */
  readonly nonzero: boolean;
  /** The decoded codes equal the codes that were packed; undefined when those are not known. */
  readonly roundTrips?: boolean;
  /** The scale stored inside the payload (I2_S, TQ, Q2_0); undefined for TL1/TL2. */
  readonly embeddedScale: number | undefined;
  /**
   * Payloads decoded here: what breaks the scale rules of docs/FORMAT.md §1.7 (every block's d,
   * group agreement, usable group scales), checked instead of `embeddedScale` alone.
   */
  readonly scaleProblems?: readonly { readonly code: "E_B158_LAYOUT" | "E_SCALE_INVALID"; readonly message: string }[];
}

/** How validation may lean on a converter that just wrote the file. */
export interface ValidateOptions {
  /** The converter's checks of the ternary payloads it packed; the others are decoded from the file. */
  readonly packed?: ReadonlyMap<string, PackedCheck>;
  /** NaN/Inf counts of the float payloads the converter scanned in memory as it wrote them. */
  readonly nonFinite?: ReadonlyMap<string, number>;
  /**
   * Every payload as the converter's workers read it back from the file right after writing it:
   * damaged unless it read back byte for byte as written, padding included (slot.ts), with the
   * sha256 of what was written, which must be the header's. The payloads it has are only added to
   * the whole-file hash here; the others are hashed and scanned.
   */
  readonly readBack?: ReadonlyMap<string, PayloadScan>;
  /**
   * Payloads the converter wrote past the page cache (not read back), with the XXH64 it took of
   * them (checksum.ts): read from the file and checked against it, not hashed with sha256 again.
   */
  readonly checksums?: ReadonlyMap<string, WrittenChecksum>;
  /** The file was written with O_DIRECT: hash it the same way (file-hash.ts), not through the page cache. */
  readonly directRead?: boolean;
  /** Bytes per read of the file (default 8 MiB): whole 4096-byte blocks. */
  readonly chunkBytes?: number;
  /**
   * Scan payloads on a second thread while this one hashes the whole file (scan-helper.ts; only
   * where the compiled worker is there). Default: when at least 64 MiB of payloads are to be scanned.
   */
  readonly scanThread?: boolean;
  /** After each payload is read. */
  readonly onProgress?: (progress: FileScanProgress) => void;
}

/** Progress of a pass over a file's tensors (.b158 or GGUF validation). */
export interface FileScanProgress {
  readonly tensor: string;
  /** 1-based, of `total`. */
  readonly done: number;
  readonly total: number;
  /** The tensor's layout or GGUF type, shape and stored bytes. */
  readonly layout: string;
  readonly shape: readonly number[];
  readonly bytes: number;
  readonly doneBytes: number;
  readonly totalBytes: number;
}

export async function validateB158(path: string, options: ValidateOptions = {}): Promise<B158Validation> {
  const file = await openB158File(path);
  try {
    return await validateOpen(file, options);
  } finally {
    await file.close();
  }
}

export async function validateOpen(file: B158File, options: ValidateOptions = {}): Promise<B158Validation> {
  const { packed } = options;
  const decode = (t: B158Tensor) => t.layoutParams !== undefined && !packed?.has(t.name);
  const ranges = payloadRanges(file, options.nonFinite);
  const scan = await scanFile(file, ranges, decode, options);
  const diagnostics: Diagnostic[] = [];
  const facts: TensorFacts[] = [];
  const perTensor: Diagnostic[] = [];
  for (const [i, t] of file.tensors.entries()) {
    const parameters = t.shape.reduce((a, b) => a * b, 1);
    const result = scan.payloads[i]!;
    if (result.damaged || result.sha256 !== t.sha256) {
      diagnostics.push({ severity: "error", code: "E_B158_HASH", tensor: t.name, message: `"${t.name}": payload does not match its sha256 (the file is damaged)` });
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length });
      continue;
    }
    if (result.badPadding) {
      // outside the payload, which is still checked
      perTensor.push({ severity: "error", code: "E_B158_PADDING", tensor: t.name, message: `"${t.name}": the alignment padding after the payload is not all zero` });
    }
    if (t.layoutParams !== undefined) {
      let check = packed?.get(t.name);
      let counts: [number, number, number] | undefined;
      if (check === undefined) {
        // the pass decoded every payload the converter had no check for
        const decoded = scan.decoded.get(t.name)!;
        if ("refused" in decoded) {
          // a damaged tensor (a code outside the ternary alphabet) is reported, and the others are still checked
          perTensor.push({ severity: "error", code: decoded.refused.code, tensor: t.name, message: decoded.refused.message });
          facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length });
          continue;
        }
        ({ counts, check } = decoded);
      }
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length, ...(counts === undefined ? {} : { counts }) });
      perTensor.push(...ternaryDiagnostics(t, check));
    } else {
      facts.push({ name: t.name, layout: t.layout, parameters, bytes: t.length });
      const nonFinite = options.nonFinite?.get(t.name) ?? result.nonFinite;
      if (nonFinite > 0) perTensor.push({ severity: "error", code: "E_NONFINITE", tensor: t.name, message: `"${t.name}": ${nonFinite} NaN/Inf values` });
    }
  }
  for (const d of perTensor) diagnostics.push(d);
  return {
    ok: !diagnostics.some((d) => d.severity === "error"),
    file: file.name,
    size: file.size,
    sha256: scan.sha256,
    tensors: facts,
    diagnostics,
  };
}

/** What decoding a ternary payload found, or the error that refused its bytes. */
type Decoded = { readonly counts: [number, number, number]; readonly check: PackedCheck } | { readonly refused: B158Error };

function decodePayload(file: B158File, t: B158Tensor, payload: Uint8Array): Decoded {
  let unpacked: Unpacked;
  try {
    unpacked = unpackLayout(t.layoutParams!, payload, t.shape as [number, number], undefined, { file: file.name, tensor: t.name });
  } catch (error) {
    if (!(error instanceof B158Error)) throw error;
    return { refused: error };
  }
  const counts = countCodes(unpacked.codes);
  return { counts, check: { nonzero: counts[0] + counts[2] > 0, embeddedScale: unpacked.scale, scaleProblems: scaleProblems(t, unpacked) } };
}

/**
 * The scales inside a decoded payload against the header (docs/FORMAT.md §1.7): I2_S's f32 is the
 * header's scale; in TQ1_0/TQ2_0/Q2_0 every block holding a nonzero code has d = f16(scale), a d
 * f16 can hold, or, with group_size, the same d as the other nonzero blocks of its group, finite
 * and positive. The d of an all-zero block is not read.
 */
function scaleProblems(t: B158Tensor, unpacked: Unpacked): NonNullable<PackedCheck["scaleProblems"]> {
  const [M, K] = t.shape as [number, number];
  const block = SCALE_BLOCK[t.layoutParams!.layout];
  if (t.group_size !== undefined) {
    const groups = groupScalesFromBlocks(unpacked.blockScales!, unpacked.codes, M, K, block!, t.group_size);
    if ("conflict" in groups) {
      const { row, group, scales } = groups.conflict;
      return [{ code: "E_B158_LAYOUT", message: `blocks of group ${group} of row ${row} (group_size ${t.group_size}) have different scales ${scales[0]} and ${scales[1]}` }];
    }
    const bad = invalidGroupScale(groups, unpacked.codes);
    if (bad === undefined) return [];
    const perRow = K / t.group_size;
    return [{ code: "E_SCALE_INVALID", message: `group ${bad.group % perRow} of row ${Math.floor(bad.group / perRow)} holds nonzero codes with scale (block d) ${bad.scale}, which is not finite and positive` }];
  }
  const scale = t.scale!;
  // a header scale that is not finite and positive is E_SCALE_INVALID already
  if (!(Number.isFinite(scale) && scale > 0)) return [];
  if (t.layout === "i2_s") {
    return unpacked.scale === Math.fround(scale) ? [] : [{ code: "E_B158_LAYOUT", message: `the f32 scale inside the payload (${unpacked.scale}) is not the header's (${scale})` }];
  }
  if (block === undefined) return []; // TL1/TL2: the scale is only in the header
  const d = fromF16Bits(toF16Bits(scale));
  if (d === 0 || d === Infinity) return [{ code: "E_SCALE_INVALID", message: `scale ${scale} is 0 or infinite as the f16 d its ${t.layout} blocks store` }];
  const mismatch = blockScaleMismatch(unpacked.blockScales!, unpacked.codes, block, d);
  return mismatch === undefined ? [] : [{ code: "E_B158_LAYOUT", message: `block ${mismatch.block} holds nonzero codes with d = ${mismatch.d}; the header's scale ${scale} is d = ${d}` }];
}

/** The rules for a ternary payload: a usable header scale, not all zero, the same scale inside, the codes that were packed. */
function ternaryDiagnostics(t: B158Tensor, check: PackedCheck): Diagnostic[] {
  const out: Diagnostic[] = [];
  const scale = t.scale;
  if (scale !== undefined && !(Number.isFinite(scale) && scale > 0)) {
    out.push({ severity: "error", code: "E_SCALE_INVALID", tensor: t.name, message: `"${t.name}": scale ${scale} is not finite and positive` });
  }
  if (!check.nonzero) {
    out.push({ severity: "error", code: "E_ALL_ZERO", tensor: t.name, message: `"${t.name}": every ternary weight is 0 (a degenerate tensor, like the broken 2B-4T re-upload)` });
  }
  if (check.scaleProblems !== undefined) {
    for (const problem of check.scaleProblems) out.push({ severity: "error", code: problem.code, tensor: t.name, message: `"${t.name}": ${problem.message}` });
  } else if (scale !== undefined && Number.isFinite(scale)) {
    // the converter's own check of what it packed: one scale, in every block it wrote
    const expectedEmbedded = t.layout === "i2_s" ? Math.fround(scale) : SCALE_BLOCK[t.layoutParams!.layout] !== undefined ? (check.nonzero ? fromF16Bits(toF16Bits(scale)) : 0) : undefined;
    if (expectedEmbedded !== undefined && check.embeddedScale !== expectedEmbedded) {
      out.push({ severity: "error", code: "E_B158_LAYOUT", tensor: t.name, message: `"${t.name}": the scale inside the payload (${check.embeddedScale}) disagrees with the header's (${scale})` });
    }
  }
  if (check.roundTrips === false) {
    out.push({ severity: "error", code: "E_DECODE_MISMATCH", tensor: t.name, message: `"${t.name}": decoding the written payload does not give the codes that were packed` });
  }
  return out;
}

interface FileScan {
  readonly sha256: string;
  /** One per tensor, in file order. */
  readonly payloads: readonly PayloadScan[];
  /** The ternary payloads decoded as the scan completed each (one payload whole at a time). */
  readonly decoded: ReadonlyMap<string, Decoded>;
}

/** Each payload's stretch of the file, with the padding up to the next; floats whose count is `known` are not scanned again. */
function payloadRanges(file: B158File, known: ReadonlyMap<string, number> | undefined): PayloadRange[] {
  const tensors = file.tensors;
  return tensors.map((t, i) => {
    const end = t.fileOffset + t.length;
    const next = i + 1 < tensors.length ? tensors[i + 1]!.fileOffset : end;
    return { name: t.name, fileOffset: t.fileOffset, length: t.length, padding: next - end, sha256: t.sha256, layout: t.layout, scanFloats: !known?.has(t.name) };
  });
}

/**
 * One sequential read of the whole file, a chunk ahead of the hashing: the file's sha256 and the
 * scan of every payload `readBack` does not vouch for, in the same pass, decoding the payloads
 * `decode` names as each is complete (then dropped: memory holds one payload, not the model).
 * Payloads are contiguous and in file order (the reader checked), so walking the file's chunks
 * walks them. Payloads with the converter's checksum are checked against it here; the others are
 * scanned, on a second thread (scan-helper.ts) when there are enough of them.
 */
async function scanFile(file: B158File, ranges: readonly PayloadRange[], decode: (t: B158Tensor) => boolean, options: ValidateOptions): Promise<FileScan> {
  const { readBack, checksums, onProgress } = options;
  const tensors = file.tensors;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const reading = { direct: options.directRead === true, chunkBytes };
  const checked = tensors.flatMap((t, i) => (readBack?.has(t.name) !== true && checksums?.has(t.name) === true ? [i] : []));
  const scanned = tensors.flatMap((t, i) => (readBack?.has(t.name) === true || checksums?.has(t.name) === true ? [] : [i]));
  const scannedBytes = scanned.reduce((sum, i) => sum + tensors[i]!.length, 0);
  const helper = (options.scanThread ?? scannedBytes >= SCAN_THREAD_BYTES) ? ScanHelper.start(scanned.map((i) => ranges[i]!), chunkBytes, file.name) : undefined;
  try {
    const checking = checked.length > 0 ? checksumMemory(chunkBytes, helper === undefined) : undefined;
    // without a helper, this thread scans; checksums are always checked here
    const scanners = new Map<number, PayloadScanner | ChecksumScanner>(helper === undefined ? scanned.map((i) => [i, new PayloadScanner(ranges[i]!)]) : []);
    for (const i of checked) scanners.set(i, new ChecksumScanner(checksums!.get(tensors[i]!.name)!, new PayloadChecksum(checking?.kernels, checking?.scratch)));
    const decoded = new Map<string, Decoded>();
    let pieces: Uint8Array[] = [];
    const walk = new PayloadWalk(ranges, {
      payload(i, bytes) {
        scanners.get(i)?.update(bytes);
        // chunks are reused: a kept piece is a copy
        if (decode(tensors[i]!)) pieces.push(bytes.slice());
      },
      padding: (i, bytes) => scanners.get(i)?.padding(bytes),
      end(i) {
        const t = tensors[i]!;
        if (decode(t)) decoded.set(t.name, decodePayload(file, t, concat(pieces, t.length)));
        pieces = [];
        onProgress?.({ tensor: t.name, done: i + 1, total: tensors.length, layout: t.layout, shape: t.shape, bytes: t.length, doneBytes: t.fileOffset + t.length, totalBytes: file.size });
      },
    });
    const whole = createHash("sha256");
    let position = 0;
    const buffers = helper ?? checking?.buffers;
    for await (const chunk of fileChunks(file.name, { ...reading, ...(buffers === undefined ? {} : { buffers }) })) {
      // the helper scans this chunk while this thread hashes it
      helper?.send(chunk, position);
      whole.update(chunk);
      walk.feed(chunk, position);
      position += chunk.byteLength;
    }
    if (walk.ended < tensors.length) {
      const t = tensors[walk.ended]!;
      throw new B158Error("E_IO", `${file.name}: the file ended at ${position} bytes, inside the payload of "${t.name}" (it changed while being read)`, { details: { file: file.name, tensor: t.name } });
    }
    const helped = await helper?.finish();
    const scans = new Map(scanned.map((i, k) => [i, helped?.[k] ?? scanners.get(i)!.finish()]));
    for (const i of checked) scans.set(i, scanners.get(i)!.finish());
    return { sha256: whole.digest("hex"), payloads: tensors.map((t, i) => scans.get(i) ?? readBack!.get(t.name)!), decoded };
  } finally {
    await helper?.close();
  }
}

/**
 * Where checksums run in WebAssembly (checksum.ts): the two chunk buffers the file is read into,
 * block-aligned in the kernels' memory (its base is page-aligned), when this thread owns the
 * chunks; else a scratch the helper's chunks are copied through. No kernels: TypeScript.
 */
function checksumMemory(chunkBytes: number, ownChunks: boolean): { kernels?: WasmKernels; scratch?: Uint8Array; buffers?: ChunkBuffers } {
  const arena = Arena.create();
  const kernels = arena.kernels;
  if (kernels === undefined) return {};
  if (!ownChunks) return { kernels, scratch: arena.carve(CHECKSUM_SCRATCH)[0]! };
  const [space] = arena.carve(2 * chunkBytes + DIRECT_BLOCK);
  const start = alignUp(space!.byteOffset, DIRECT_BLOCK) - space!.byteOffset;
  return { kernels, buffers: takingTurns(chunkBytes, space!.subarray(start, start + 2 * chunkBytes)) };
}

const CHECKSUM_SCRATCH = 1024 * 1024;

/** Bytes of payloads to scan from which a second thread does it (starting one costs tens of milliseconds). */
const SCAN_THREAD_BYTES = 64 * 1024 * 1024;

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
