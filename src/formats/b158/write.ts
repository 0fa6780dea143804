import { createHash } from "node:crypto";
import { B158Error } from "../../errors.js";
import { AtomicFile } from "../../io/atomic-file.js";
import type { TensorScale } from "../../pack/scales.js";
import type { PayloadSlot } from "./slot.js";
import { encodeHeaderParts, type B158Header, type B158TensorEntry, type EmbeddedFile, type HeaderParts } from "./header.js";
import { alignUp, DATA_ALIGNMENT, MAGIC, MAJOR, PAYLOAD_ALIGNMENT, PREAMBLE_BYTES } from "./spec.js";

/**
 * A streaming, atomic .b158 writer (docs/FORMAT.md). Payload lengths are known before any is
 * packed, so every offset is fixed up front and payloads can be written in any order, by
 * position, by the threads that make them (slot.ts). The header goes in last: its region is sized from the same header
 * with placeholder hashes and scales (the largest encodings), which keeps output deterministic.
 * The files it embeds (tokenizer.json...) are streamed into it from their sources, never held.
 * Everything goes to a temp file beside the target, renamed into place only by publish().
 */

/**
 * A tensor as planned: everything but where it lands and what it hashes to. `mayGroup`: a ternary
 * tensor whose scales may turn out per group (stored weights in a layout that holds groups), so
 * its header entry may carry group_size instead of scale.
 */
export type PlannedTensor = Omit<B158TensorEntry, "offset" | "sha256" | "scale" | "group_size"> & { readonly ternary: boolean; readonly mayGroup?: boolean };

export interface WriterOptions {
  /** Replace an existing file at the target. */
  readonly force?: boolean;
  /**
   * Payload blocks written with O_DIRECT, past the page cache (io/direct-io.ts): "auto" (the
   * default) for files of DIRECT_MIN_BYTES or more, unless B158_DIRECT_IO is 0 (never) or 1 (any
   * size); "on" for any size; "off" never. Where O_DIRECT is unavailable every mode writes through the cache.
   */
  readonly directIo?: "auto" | "on" | "off";
}

/** Below this, the page cache costs too little to matter. */
export const DIRECT_MIN_BYTES = 64 * 1024 * 1024;

const PLACEHOLDER_SHA = "0".repeat(64);

/** The header without its tensors, its embedded files as bytes or as sources read when the header is written. */
export type WriterDraft = Omit<B158Header, "tensors" | "files"> & { readonly files: Readonly<Record<string, Uint8Array | EmbeddedFile>> };

export class B158Writer {
  private readonly offsets: number[];
  private readonly hashes: (string | undefined)[];
  private readonly scales: (TensorScale | undefined)[];

  private constructor(
    private readonly file: AtomicFile,
    private readonly draft: Omit<B158Header, "tensors" | "files">,
    private readonly files: ReadonlyMap<string, EmbeddedFile>,
    private readonly planned: readonly PlannedTensor[],
    readonly dataOffset: number,
    readonly fileSize: number,
    offsets: number[],
  ) {
    this.offsets = offsets;
    this.hashes = planned.map(() => undefined);
    this.scales = planned.map(() => undefined);
  }

  static async create(path: string, { files: given, ...draft }: WriterDraft, planned: readonly PlannedTensor[], options: WriterOptions = {}): Promise<B158Writer> {
    const files = new Map(Object.entries(given).map(([name, file]) => [name, file instanceof Uint8Array ? embeddedBytes(file) : file]));
    const offsets: number[] = [];
    let end = 0;
    for (const tensor of planned) {
      const offset = alignUp(end, PAYLOAD_ALIGNMENT);
      offsets.push(offset);
      end = offset + tensor.length;
    }
    // the largest encodings of what record() may bring: a float64 scale, and a u64 group size where one may come
    const placeholder = headerParts(draft, files, planned.map((t, i) => ({ ...entry(t, offsets[i]!, PLACEHOLDER_SHA, t.ternary ? Number.NaN : undefined), ...(t.mayGroup ? { group_size: Number.MAX_SAFE_INTEGER } : {}) })));
    const dataOffset = alignUp(PREAMBLE_BYTES + placeholder.length, DATA_ALIGNMENT);
    const mode = options.directIo ?? "auto";
    const env = process.env.B158_DIRECT_IO;
    const direct = mode === "on" || (mode === "auto" && env !== "0" && (env === "1" || dataOffset + end >= DIRECT_MIN_BYTES));
    const file = await AtomicFile.create(path, options.force ?? false, direct);
    return new B158Writer(file, draft, files, planned, dataOffset, dataOffset + end, offsets);
  }

  get path(): string {
    return this.file.path;
  }

  /** Where payload `index` goes, for the thread that makes it (it writes and hashes it there, slot.ts). */
  slot(index: number): PayloadSlot {
    const tensor = this.planned[index];
    if (tensor === undefined) throw new B158Error("E_INTERNAL", `payload ${index} is unknown`);
    const position = this.dataOffset + this.offsets[index]!;
    const next = index + 1 < this.planned.length ? this.dataOffset + this.offsets[index + 1]! : position + tensor.length;
    return { fd: this.file.fd, directFd: this.file.directFd, output: this.file.path, tensor: tensor.name, position, length: tensor.length, padding: next - position - tensor.length };
  }

  /** Starts flushing the payloads written so far (AtomicFile.flushSoFar). */
  flushSoFar(): void {
    this.file.flushSoFar();
  }

  /** Records a payload written through its slot: its sha256, and the scale of a ternary layout (one value, or per group). */
  record(index: number, sha256: string, scale?: TensorScale): void {
    const tensor = this.planned[index];
    if (tensor === undefined || this.hashes[index] !== undefined) throw new B158Error("E_INTERNAL", `payload ${index} is unknown or written twice`);
    if (tensor.ternary !== (scale !== undefined)) throw new B158Error("E_INTERNAL", `payload ${index} (${tensor.name}): scale ${tensor.ternary ? "missing" : "given for a plain array"}`);
    if (typeof scale === "object" && !tensor.mayGroup) throw new B158Error("E_INTERNAL", `payload ${index} (${tensor.name}): group scales for a tensor planned with one scale`);
    this.hashes[index] = sha256;
    this.scales[index] = scale;
  }

  /**
   * Writes header and preamble; the complete file is then at `tempPath` (validate it there) while
   * it is flushed to disk, which publish() waits for before the rename.
   */
  async finish(): Promise<{ tempPath: string; size: number; headerLength: number; dataOffset: number }> {
    const missing = this.hashes.findIndex((h) => h === undefined);
    if (missing !== -1) throw new B158Error("E_INTERNAL", `payload ${missing} (${this.planned[missing]!.name}) was never written`);
    const tensors = this.planned.map((t, i) => entry(t, this.offsets[i]!, this.hashes[i]!, this.scales[i]));
    const header = headerParts(this.draft, this.files, tensors);
    if (PREAMBLE_BYTES + header.length > this.dataOffset) throw new B158Error("E_INTERNAL", "the header outgrew its reserved region");
    const hash = createHash("sha256");
    let at = PREAMBLE_BYTES;
    const put = async (bytes: Uint8Array) => {
      hash.update(bytes);
      await this.file.write(bytes, at);
      at += bytes.byteLength;
    };
    await put(header.head);
    for (const { name, prefix } of header.files) {
      await put(prefix);
      await streamEmbedded(name, this.files.get(name)!, put);
    }
    await put(header.tail);
    await this.file.write(new Uint8Array(this.dataOffset - at), at);
    const preamble = new Uint8Array(PREAMBLE_BYTES);
    const view = new DataView(preamble.buffer);
    preamble.set(MAGIC, 0);
    view.setUint16(8, MAJOR, true);
    view.setUint16(10, minorVersion({ ...this.draft, files: Object.fromEntries(this.files) }, tensors), true);
    view.setUint32(12, 0, true);
    view.setBigUint64(16, BigInt(header.length), true);
    view.setBigUint64(24, BigInt(this.dataOffset), true);
    preamble.set(hash.digest(), 32);
    await this.file.write(preamble, 0);
    await this.file.finish(this.fileSize);
    return { tempPath: this.file.tempPath, size: this.fileSize, headerLength: header.length, dataOffset: this.dataOffset };
  }

  /** Waits for the flush, then renames the finished temp file onto the target: the only moment the target changes. */
  publish(): Promise<void> {
    return this.file.publish();
  }

  get temporaryPath(): string {
    return this.file.tempPath;
  }

  /** Removes the temp file; the target is untouched. Safe to call more than once. */
  abort(): Promise<void> {
    return this.file.abort();
  }
}

function headerParts(draft: Omit<B158Header, "tensors" | "files">, files: ReadonlyMap<string, EmbeddedFile>, tensors: readonly B158TensorEntry[]): HeaderParts {
  return encodeHeaderParts({ ...draft, tensors }, [...files].map(([name, file]) => ({ name, size: file.size })));
}

/** Writes an embedded file's bytes through `put`, refusing them unless they are the ones the header was sized and planned for. */
async function streamEmbedded(name: string, file: EmbeddedFile, put: (bytes: Uint8Array) => Promise<void>): Promise<void> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of file.chunks()) {
    size += chunk.byteLength;
    if (size > file.size) break;
    hash.update(chunk);
    await put(chunk);
  }
  if (size !== file.size || hash.digest("hex") !== file.sha256) {
    throw new B158Error("E_SOURCE_CHANGED", `${name}: the file changed while b158 was converting (${file.size} bytes when it started)`, {
      details: { file: name },
      hint: "Let whatever writes into the source finish, then convert again.",
    });
  }
}

/** An embedded file already in memory. */
export function embeddedBytes(bytes: Uint8Array): EmbeddedFile {
  return {
    size: bytes.byteLength,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    async *chunks() {
      yield bytes;
    },
  };
}

function entry(tensor: PlannedTensor, offset: number, sha256: string, scale: TensorScale | undefined): B158TensorEntry {
  const { ternary: _ternary, mayGroup: _mayGroup, ...rest } = tensor;
  const scaleFields = scale === undefined ? {} : typeof scale === "number" ? { scale } : { group_size: scale.groupSize };
  return { ...rest, offset, sha256, ...scaleFields };
}

/** The smallest minor whose features the header uses (docs/FORMAT.md §1.8): 1.0 files stay byte for byte what 1.0 writers made. */
export function minorVersion(draft: Omit<B158Header, "tensors" | "files"> & { readonly files: object }, tensors: readonly B158TensorEntry[]): 0 | 1 {
  const uses11 =
    draft.model.family === "fake-quantized" ||
    draft.model.family === "bitnet-embedding" ||
    Object.keys(draft.files).some((name) => name.includes("/")) ||
    draft.provenance.options.weights !== undefined ||
    draft.provenance.options.layout === "q2_0" ||
    tensors.some((t) => t.layout === "q2_0" || t.group_size !== undefined || ((t.scale !== undefined || t.group_size !== undefined) && t.role !== "ternary-linear"));
  return uses11 ? 1 : 0;
}
