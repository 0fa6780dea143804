import { createHash } from "node:crypto";
import { fileSource, readAhead } from "./byte-source.js";

/** sha256 of a whole file, read in 8 MiB chunks, the next read in flight while one is hashed (constant memory). */
export async function fileSha256(path: string): Promise<string> {
  const source = await fileSource(path);
  const hash = createHash("sha256");
  try {
    for await (const chunk of readAhead(source, 0, source.size, undefined, true)) hash.update(chunk);
  } finally {
    await source.close();
  }
  return hash.digest("hex");
}
