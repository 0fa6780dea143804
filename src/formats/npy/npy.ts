import { B158Error } from "../../errors.js";
import { AtomicFile } from "../../io/atomic-file.js";
import { fileSource, type ByteSource } from "../../io/byte-source.js";

/**
 * NumPy's .npy format, version 1.0, for float32 matrices (logits that anyone can load with
 * numpy.load and compare with another runtime):
 *
 *   offset 0   6 bytes  magic "\x93NUMPY"
 *          6   1 byte   major version 1
 *          7   1 byte   minor version 0
 *          8   u16 LE   HEADER_LEN
 *         10   HEADER_LEN bytes: an ASCII Python dict literal
 *                "{'descr': '<f4', 'fortran_order': False, 'shape': (R, C), }"
 *              padded with spaces and ended with "\n" so that 10 + HEADER_LEN is a multiple of 64
 *         then R x C little-endian float32, row-major (C order)
 *
 * The writer writes exactly that; the reader accepts only it (descr '<f4', C order, a 2-D shape,
 * and a data section of exactly R x C x 4 bytes), and nothing a hostile header asks for is
 * allocated before the file's size is checked against it.
 */
const MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59);
const ALIGN = 64;
/** numpy's own limit for version 1.0 headers. */
const MAX_HEADER = 65535;

export function npyHeader(shape: readonly [number, number]): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape[0]}, ${shape[1]}), }`;
  const unpadded = 10 + dict.length + 1;
  const total = Math.ceil(unpadded / ALIGN) * ALIGN;
  const text = dict + " ".repeat(total - unpadded) + "\n";
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return out;
}

/** Streams rows into a .npy that appears at `path` only when complete (commit), or not at all (abort). */
export class NpyWriter {
  private rowsWritten = 0;
  private constructor(
    private readonly file: AtomicFile,
    readonly shape: readonly [number, number],
    private readonly dataOffset: number,
  ) {}

  static async create(path: string, shape: readonly [number, number], options: { readonly force?: boolean } = {}): Promise<NpyWriter> {
    const header = npyHeader(shape);
    const file = await AtomicFile.create(path, options.force ?? true);
    try {
      await file.write(header, 0);
    } catch (error) {
      await file.abort();
      throw error;
    }
    return new NpyWriter(file, shape, header.byteLength);
  }

  /** Appends whole rows (a multiple of the row length). */
  async write(rows: Float32Array): Promise<void> {
    const cols = this.shape[1];
    if (rows.length % cols !== 0 || this.rowsWritten + rows.length / cols > this.shape[0]) {
      throw new B158Error("E_INTERNAL", `.npy rows of ${cols}: ${rows.length} values do not fit (${this.rowsWritten} of ${this.shape[0]} rows written)`);
    }
    const bytes = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
    await this.file.write(isLittleEndian ? bytes : swapped(rows), this.dataOffset + this.rowsWritten * cols * 4);
    this.rowsWritten += rows.length / cols;
  }

  async commit(): Promise<void> {
    if (this.rowsWritten !== this.shape[0]) throw new B158Error("E_INTERNAL", `.npy: ${this.rowsWritten} of ${this.shape[0]} rows written`);
    await this.file.finish(this.dataOffset + this.shape[0] * this.shape[1] * 4);
    await this.file.publish();
  }

  abort(): Promise<void> {
    return this.file.abort();
  }
}

/** Writes a whole [rows, cols] float32 matrix. */
export async function writeNpy(path: string, values: Float32Array, shape: readonly [number, number], options: { readonly force?: boolean } = {}): Promise<void> {
  const writer = await NpyWriter.create(path, shape, options);
  try {
    await writer.write(values);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

const isLittleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function swapped(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

export interface NpyMatrix {
  readonly shape: readonly [number, number];
  readonly values: Float32Array;
}

/** Reads the whole matrix and closes the file (the matrix keeps nothing of it). */
export async function readNpyFile(path: string): Promise<NpyMatrix> {
  const source = await fileSource(path);
  try {
    return await readNpy(source);
  } finally {
    await source.close();
  }
}

export async function readNpy(source: ByteSource): Promise<NpyMatrix> {
  const fail = (message: string): never => {
    throw new B158Error("E_NPY", `${source.name}: ${message}`, { details: { file: source.name }, hint: "Only float32 C-order 2-D .npy files (version 1.0) are read." });
  };
  if (source.size < 10) fail(`is ${source.size} bytes, shorter than a .npy preamble`);
  const preamble = await source.read(0, 10);
  if (!MAGIC.every((b, i) => preamble[i] === b)) fail('does not start with the .npy magic "\\x93NUMPY"');
  if (preamble[6] !== 1 || preamble[7] !== 0) fail(`is .npy version ${preamble[6]}.${preamble[7]}; version 1.0 is read`);
  const headerLength = preamble[8]! | (preamble[9]! << 8);
  if (headerLength > MAX_HEADER || 10 + headerLength > source.size) fail(`header of ${headerLength} bytes runs past the end of the ${source.size}-byte file`);
  const header = new TextDecoder("latin1").decode(await source.read(10, headerLength));
  const match = /^\{'descr': '([^']*)', 'fortran_order': (True|False), 'shape': \((\d+), (\d+)\), \} *\n$/.exec(header);
  if (match === null) fail(`header ${JSON.stringify(header.trimEnd())} is not a 2-D array description`);
  const [, descr, fortran, r, c] = match!;
  if (descr !== "<f4") fail(`holds ${descr} values; '<f4' (little-endian float32) is read`);
  if (fortran !== "False") fail("is in Fortran order; C order is read");
  const shape: [number, number] = [Number(r), Number(c)];
  const dataOffset = 10 + headerLength;
  const bytes = shape[0] * shape[1] * 4;
  if (!Number.isSafeInteger(bytes) || dataOffset + bytes !== source.size) fail(`shape (${shape[0]}, ${shape[1]}) needs ${bytes} data bytes; the file holds ${source.size - dataOffset}`);
  const data = await source.read(dataOffset, bytes);
  const copy = new Float32Array(shape[0] * shape[1]);
  new Uint8Array(copy.buffer).set(data);
  if (!isLittleEndian) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < copy.length; i++) copy[i] = view.getFloat32(i * 4, true);
  }
  return { shape, values: copy };
}
