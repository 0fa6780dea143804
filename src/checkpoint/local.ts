import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { B158Error, ioError } from "../errors.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { fileSource, type ByteSource } from "../io/byte-source.js";
import type { CheckpointFiles } from "./files.js";

/** Small JSON/text files above this are refused: no config or index comes close (CWE-770). */
export const MAX_TEXT_FILE_BYTES = 64 * 1024 * 1024;

/** A local directory, or a single .safetensors file plus its directory's config and tokenizer files. */
export async function localCheckpointFiles(path: string): Promise<CheckpointFiles> {
  const absolute = resolve(path);
  let info;
  try {
    info = await stat(absolute);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
      const file = /\.(b158|gguf|safetensors)$/i.exec(path)?.[1]?.toLowerCase();
      throw new B158Error("E_SOURCE_NOT_FOUND", `${path}: no such ${file === undefined ? "file or directory" : "file"}`, {
        details: { source: path },
        hint:
          file === undefined
            ? "Check the path: a checkpoint directory (config.json + *.safetensors), a .safetensors file, or hf://org/name for the Hub."
            : `Check the path of the .${file} file.`,
      });
    }
    throw ioError(path, "stat", cause);
  }
  const directory = info.isDirectory() ? absolute : dirname(absolute);
  const single = info.isDirectory() ? undefined : basename(absolute);
  if (single !== undefined && !single.endsWith(".safetensors")) throw await notACheckpoint(path, single);

  const full = (name: string): string => {
    // Names come from index files we do not trust: refuse anything that leaves the directory. A
    // name may go one folder down ("1_Pooling/config.json", as sentence-transformers lays out).
    const parts = name.split("/");
    if (name.includes("\\") || parts.length > 2 || parts.some((p) => p === ".." || p === "." || p.length === 0)) {
      throw new B158Error("E_INDEX_JSON", `${path}: file name ${JSON.stringify(name)} is not a plain file name`, {
        details: { source: path, name },
      });
    }
    return join(directory, name);
  };

  return {
    label: path,
    origin: { kind: "local", path: absolute },
    ...(single === undefined ? {} : { singleWeightsFile: single }),
    async list() {
      try {
        const entries = await readdir(directory, { withFileTypes: true });
        return entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name).sort();
      } catch (cause) {
        throw ioError(directory, "list", cause);
      }
    },
    localPath: full,
    async has(name) {
      try {
        return (await stat(full(name))).isFile();
      } catch {
        return false;
      }
    },
    async open(name): Promise<ByteSource> {
      return fileSource(full(name));
    },
    async readText(name, maxBytes = MAX_TEXT_FILE_BYTES) {
      const source = await fileSource(full(name));
      try {
        if (source.size > maxBytes) {
          throw new B158Error("E_IO", `${source.name}: ${source.size} bytes is too large for a ${name} file (limit ${maxBytes})`, {
            details: { file: source.name, size: source.size, limit: maxBytes },
          });
        }
        const bytes = await source.read(0, source.size);
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          // The code names the file's own rule: a broken index is E_INDEX_JSON, not a config error.
          const code = name.endsWith(".index.json") ? "E_INDEX_JSON" : "E_CONFIG_INVALID";
          throw new B158Error(code, `${source.name}: not valid UTF-8`, { details: { file: source.name } });
        }
      } finally {
        await source.close();
      }
    },
  };
}

/**
 * A file given where a checkpoint was expected. Named .gguf or .b158 but without that magic (the
 * readers claim real ones first), it is a damaged or mislabelled file of that format, not a
 * checkpoint question.
 */
async function notACheckpoint(path: string, name: string): Promise<B158Error> {
  if (await isB158File(path)) {
    return new B158Error("E_SOURCE_UNRECOGNIZED", `${path}: is a .b158 file, not a checkpoint`, {
      details: { source: path },
      hint: `b158 export ${path} -o model.gguf writes a GGUF from it; b158 inspect and b158 validate read it.`,
    });
  }
  if (/\.gguf$/i.test(name) && !(await isGgufFile(path))) {
    return new B158Error("E_GGUF_MAGIC", `${path}: not a GGUF file: it does not start with the GGUF magic`, {
      details: { file: path },
      hint: "The file is damaged, truncated at the start, or not a GGUF despite its name; download or export it again.",
    });
  }
  if (/\.b158$/i.test(name)) {
    return new B158Error("E_B158_MAGIC", `${path}: not a .b158 file: it does not start with the .b158 magic`, {
      details: { file: path },
      hint: "The file is damaged or not a .b158 despite its name; b158 convert writes one.",
    });
  }
  return new B158Error("E_SOURCE_UNRECOGNIZED", `${path}: not a checkpoint directory, a .safetensors, .b158 or .gguf file`, {
    details: { source: path },
    hint: "Pass a checkpoint directory (config.json + *.safetensors), a .safetensors file, or hf://org/name for the Hub.",
  });
}
