import type { ByteSource } from "../io/byte-source.js";

/**
 * A checkpoint's files, wherever they live: a local directory today, a Hub snapshot later.
 * Names are relative, "/"-separated paths ("config.json", "model-00001-of-00002.safetensors").
 */
export interface CheckpointFiles {
  /** How people should see the source: a path, or "hf://org/name@rev". */
  readonly label: string;
  /** Where it came from, for provenance (repo id, revision) when known. */
  readonly origin: { kind: "local"; path: string } | { kind: "hub"; repo: string; revision: string; commit?: string };
  /** Every file name available (not recursive into subfolders for a local dir). */
  list(): Promise<string[]>;
  has(name: string): Promise<boolean>;
  open(name: string): Promise<ByteSource>;
  /** Whole small text file (config, index, tokenizer JSON). Bounded by `maxBytes`. */
  readText(name: string, maxBytes?: number): Promise<string>;
  /** The file's path on this machine, when it has one (conversion workers read it by position). */
  localPath?(name: string): string;
  /** When the user pointed at one .safetensors file, its name; the weights are then that file alone. */
  readonly singleWeightsFile?: string;
}
