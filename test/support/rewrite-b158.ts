import { B158Writer } from "../../src/formats/b158/write.js";
import { openB158File, type B158Tensor } from "../../src/formats/b158/read.js";
import { SlotWriter } from "../../src/formats/b158/slot.js";

/**
 * Copies a .b158 with deliberate changes, through the real writer (valid hashes, offsets and
 * header): a different config.json, other scales, or rewritten payloads of the same length. Tests
 * build broken conversions with it, the kind structural checks cannot catch.
 */
export interface Rewrite {
  readonly config?: (config: Record<string, unknown>) => Record<string, unknown>;
  /** The new scale of a ternary tensor (header and, for I2_S, the payload's f32 tail are the caller's business). */
  readonly scale?: (tensor: B158Tensor) => number;
  readonly payload?: (tensor: B158Tensor, bytes: Uint8Array) => Uint8Array;
}

export async function rewriteB158(input: string, output: string, change: Rewrite): Promise<void> {
  const file = await openB158File(input);
  try {
    const { tensors: _tensors, ...header } = file.header;
    const config = header.model.config === null || change.config === undefined ? header.model.config : change.config({ ...header.model.config });
    const files = { ...header.files };
    if (config !== null && change.config !== undefined) files["config.json"] = new TextEncoder().encode(JSON.stringify(config, null, 2));
    const draft = { ...header, files, model: { ...header.model, config } };
    // per-group scales (group_size) are recorded again as such, from the payload's blocks
    const planned = file.tensors.map(({ offset: _o, sha256: _s, scale: _c, fileOffset: _f, group_size, layoutParams, ...rest }) => ({ ...rest, ternary: layoutParams !== undefined, ...(group_size === undefined ? {} : { mayGroup: true }) }));
    const writer = await B158Writer.create(output, draft, planned, { force: true });
    try {
      for (const [index, t] of file.tensors.entries()) {
        let bytes = await file.readPayload(t.name);
        if (change.payload !== undefined) bytes = change.payload(t, bytes);
        const slot = new SlotWriter(writer.slot(index));
        slot.write(bytes);
        const scale = t.layoutParams === undefined ? undefined : t.group_size !== undefined ? (await file.decodeTernary(t.name)).scale : (change.scale?.(t) ?? t.scale!);
        writer.record(index, slot.finish(), scale);
      }
      await writer.finish();
      await writer.publish();
    } catch (error) {
      await writer.abort();
      throw error;
    }
  } finally {
    await file.close();
  }
}

/**
 * Copies an I2_S .b158 with one tensor's scale multiplied by `factor`, in the header and in the
 * f32 scale the payload's last 32 bytes hold: a wrong scale convention the rest of the file hides.
 */
export function scaleI2sTensor(input: string, output: string, tensor: string, factor: number): Promise<void> {
  return rewriteB158(input, output, {
    scale: (t) => (t.name === tensor ? Math.fround(t.scale! * factor) : t.scale!),
    payload: (t, bytes) => {
      if (t.name !== tensor) return bytes;
      const changed = bytes.slice();
      new DataView(changed.buffer, changed.byteOffset + changed.length - 32, 4).setFloat32(0, Math.fround(t.scale! * factor), true);
      return changed;
    },
  });
}
