import { open, stat } from "node:fs/promises";
import { MAGIC } from "./spec.js";

/** True when `path` is a regular file starting with the .b158 magic (extension not needed). */
export async function isB158File(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    const handle = await open(path, "r");
    try {
      const head = new Uint8Array(MAGIC.length);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      return bytesRead === MAGIC.length && MAGIC.every((b, i) => head[i] === b);
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}
