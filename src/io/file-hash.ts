import { createHash } from "node:crypto";
import { fileSource } from "./byte-source.js";

/** sha256 of a whole file, read in 8 MiB chunks (constant memory). */
export async function fileSha256(path: string): Promise<string> {
  const source = await fileSource(path);
  const hash = createHash("sha256");
  const CHUNK = 8 * 1024 * 1024;
  try {
    for (let done = 0; done < source.size; done += CHUNK) hash.update(await source.read(done, Math.min(CHUNK, source.size - done)));
  } finally {
    await source.close();
  }
  return hash.digest("hex");
}
