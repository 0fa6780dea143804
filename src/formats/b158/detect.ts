import { open, stat } from "node:fs/promises";
import { GGUF_MAGIC } from "../gguf/spec.js";
import { MAGIC } from "./spec.js";

/** True when `path` is a regular file starting with the .b158 magic (extension not needed). */
export async function isB158File(path: string): Promise<boolean> {
  return startsWith(path, MAGIC);
}

/** True when `path` is a regular file starting with "GGUF". */
export async function isGgufFile(path: string): Promise<boolean> {
  return startsWith(path, GGUF_MAGIC);
}

async function startsWith(path: string, magic: Uint8Array): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    const handle = await open(path, "r");
    try {
      const head = new Uint8Array(magic.length);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      return bytesRead === magic.length && magic.every((b, i) => head[i] === b);
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}
