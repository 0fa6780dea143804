/**
 * The one error type of b158. Every failure a user can cause carries a stable code from
 * `ERROR_CODES`; the code decides the process exit status, so scripts can branch on either.
 *
 * Library code throws `B158Error` and never prints. oclif's top-level handler is duck-typed
 * (it reads `code`, `suggestions` and `oclif.exit`), so this class needs no oclif import.
 * Codes are append-only: never rename or reuse one. The table is documented in docs/errors.md.
 */

/** Exit statuses by failure class. 1 is left to oclif/Node for unexpected crashes. */
export const EXIT = {
  usage: 2,
  badInput: 3,
  validationFailed: 4,
  io: 5,
  hub: 6,
  unsupported: 7,
  /** 128 + SIGINT, as shells report an interrupted command. */
  interrupted: 130,
  internal: 70,
} as const;
export type ExitClass = keyof typeof EXIT;

export const ERROR_CODES = {
  // usage and sources
  E_USAGE: { exit: "usage", summary: "A flag or argument is invalid." },
  E_SOURCE_NOT_FOUND: { exit: "badInput", summary: "The source path does not exist." },
  E_SOURCE_UNRECOGNIZED: { exit: "badInput", summary: "The source is not a checkpoint directory or a .safetensors file." },
  E_SOURCE_AMBIGUOUS: { exit: "badInput", summary: "The directory holds more than one candidate set of weights." },
  E_IO: { exit: "io", summary: "Reading or writing a file failed." },
  E_SOURCE_CHANGED: { exit: "io", summary: "A source file changed while it was being converted." },

  // safetensors
  E_SAFETENSORS_TRUNCATED: { exit: "badInput", summary: "The file is shorter than its header says." },
  E_SAFETENSORS_HEADER_SIZE: { exit: "badInput", summary: "The header length is zero, over 100 MiB or beyond the file." },
  E_SAFETENSORS_HEADER_JSON: { exit: "badInput", summary: "The header is not a UTF-8 JSON object." },
  E_SAFETENSORS_DUPLICATE: { exit: "badInput", summary: "A key appears twice in the header." },
  E_SAFETENSORS_ENTRY: { exit: "badInput", summary: "A tensor entry lacks dtype, shape or data_offsets, or has extra fields." },
  E_SAFETENSORS_DTYPE: { exit: "badInput", summary: "A tensor has an unknown dtype." },
  E_SAFETENSORS_SHAPE: { exit: "badInput", summary: "A shape is not a list of non-negative safe integers." },
  E_SAFETENSORS_OVERFLOW: { exit: "badInput", summary: "A tensor's byte size overflows." },
  E_SAFETENSORS_BYTE_LENGTH: { exit: "badInput", summary: "A tensor's byte length does not match its shape and dtype." },
  E_SAFETENSORS_OFFSETS: { exit: "badInput", summary: "data_offsets are out of range, overlap, leave gaps or leave bytes unindexed." },
  E_SAFETENSORS_METADATA: { exit: "badInput", summary: "__metadata__ is not a string-to-string map." },
  E_SAFETENSORS_TOO_MANY: { exit: "badInput", summary: "The header declares more tensors than b158 accepts." },

  // sharded index
  E_INDEX_JSON: { exit: "badInput", summary: "model.safetensors.index.json is not a valid index." },
  E_INDEX_MISSING_SHARD: { exit: "badInput", summary: "The index names a shard file that is not there." },
  E_INDEX_MISMATCH: { exit: "badInput", summary: "The index and the shard headers disagree." },

  // config and model
  E_CONFIG_MISSING: { exit: "badInput", summary: "config.json is missing." },
  E_CONFIG_INVALID: { exit: "badInput", summary: "config.json is not valid JSON or breaks its schema." },
  E_MODEL_FAMILY: { exit: "badInput", summary: "No BitNet family matches and no --ternarize glob was given." },
  E_MODEL_UNSUPPORTED: { exit: "unsupported", summary: "The checkpoint uses a feature no target runtime can express." },
  E_PACKED_NO_SCALE: { exit: "badInput", summary: "A packed U8 linear weight has no weight_scale sibling." },
  E_PACKED_SHAPE: { exit: "badInput", summary: "A packed weight or its weight_scale has an impossible shape or dtype." },
  E_PACKED_CODE: { exit: "badInput", summary: "A packed payload holds a code outside the ternary alphabet (docs/layouts.md)." },
  E_TOKENIZER_MODEL: { exit: "badInput", summary: "tokenizer.model is not a valid SentencePiece model." },
  E_TENSOR_MISSING: { exit: "badInput", summary: "A tensor the operation needs is not in the checkpoint." },

  // validation
  E_VALIDATION_FAILED: { exit: "validationFailed", summary: "Validation found at least one error." },

  // packing (pure code in src/pack)
  E_LAYOUT_SHAPE: { exit: "badInput", summary: "A tensor's shape is not eligible for the requested layout." },
  E_LAYOUT_UNKNOWN: { exit: "usage", summary: "The layout name is unknown." },
  E_TILING: { exit: "badInput", summary: "A TL1/TL2 tiling is invalid for the tensor shape or the kernel config." },
  E_KERNEL_CONFIG: { exit: "badInput", summary: "A kernel_config.ini file is malformed." },
  E_NONFINITE: { exit: "badInput", summary: "A tensor contains NaN or infinite values." },
  E_NOT_TERNARY: { exit: "badInput", summary: "A value outside {-1, 0, +1} reached a ternary packer." },
  E_SCALE_RANGE: { exit: "badInput", summary: "A scale does not fit the layout's scale format (f16 for TQ1_0/TQ2_0)." },
  E_PAYLOAD_SIZE: { exit: "badInput", summary: "A packed payload has the wrong byte length for its shape." },
  E_LAYOUT_SCALES: { exit: "badInput", summary: "A tensor's scale granularity (per row or per group) is one the requested layout cannot hold exactly." },
  E_STORED_NOT_TERNARY: { exit: "badInput", summary: "A tensor read with stored (fake-quantized) semantics is not exactly ternary x scale at any granularity." },

  // .b158 container (docs/FORMAT.md §3)
  E_B158_MAGIC: { exit: "badInput", summary: "Not a .b158 file (bad magic)." },
  E_B158_VERSION: { exit: "unsupported", summary: "Unknown .b158 major version, or reserved flags set." },
  E_B158_TRUNCATED: { exit: "badInput", summary: "The .b158 file ends before its preamble, header or a payload." },
  E_B158_HEADER: { exit: "badInput", summary: "The .b158 header is out of range, fails its sha256, or is not MessagePack." },
  E_B158_SCHEMA: { exit: "badInput", summary: "The .b158 header breaks schemas/b158-header.schema.json." },
  E_B158_LAYOUT: { exit: "badInput", summary: "A .b158 payload length or parameters do not fit its layout and shape." },
  E_B158_OFFSETS: { exit: "badInput", summary: "A .b158 payload is misaligned, overlaps, leaves a gap, or bytes trail the last one." },
  E_B158_HASH: { exit: "badInput", summary: "A .b158 payload does not match its sha256." },
  E_B158_PADDING: { exit: "badInput", summary: "Nonzero bytes in the alignment padding after a .b158 payload." },

  // GGUF (docs/gguf.md)
  E_GGUF_MAGIC: { exit: "badInput", summary: "Not a GGUF file (bad magic)." },
  E_GGUF_VERSION: { exit: "unsupported", summary: "A GGUF version other than 2 or 3, or a big-endian file." },
  E_GGUF_TRUNCATED: { exit: "badInput", summary: "The GGUF file ends inside its header or before its tensor data." },
  E_GGUF_HEADER: { exit: "badInput", summary: "GGUF metadata is malformed: bad counts or lengths (incl. past the end of the file), strings, value types, duplicate keys, nested arrays or alignment." },
  E_GGUF_TENSOR: { exit: "badInput", summary: "A GGUF tensor info is invalid: name, dimensions, type, block fit, or a missing TL scale." },
  E_GGUF_OFFSETS: { exit: "badInput", summary: "GGUF tensor data is not contiguous, in order and aligned as gguf.cpp requires." },
  E_GGUF_EXPORT: { exit: "unsupported", summary: "The model cannot be expressed as a GGUF for the chosen runtime." },
  E_FORMAT_REFUSED: { exit: "unsupported", summary: "The input is a quantization b158 recognises and will not treat as ternary weights (binary Q1_0 and PrismML 1-bit, PrismML PQ2_0/PTQ1_0, a Hadamard-rotated basis, MLX affine packing)." },

  // Hugging Face Hub
  E_HUB_AUTH: { exit: "hub", summary: "The Hub refused access (401/403): the repo is gated or private, or the token is wrong." },
  E_HUB_NOT_FOUND: { exit: "hub", summary: "The Hub has no such repo, revision or file (404)." },
  E_HUB_OFFLINE: { exit: "hub", summary: "HF_HUB_OFFLINE is set and the cache does not hold what is needed." },
  E_HUB_UNAVAILABLE: { exit: "hub", summary: "The Hub could not be reached or kept failing after retries." },
  E_HUB_HASH: { exit: "hub", summary: "A downloaded file does not match the hash the Hub advertised." },
  E_HUB_SPEC: { exit: "usage", summary: "A Hub source is not of the form hf://org/name[@revision]." },

  // output
  E_OUTPUT_EXISTS: { exit: "usage", summary: "The output file exists and --force was not given." },
  E_OUTPUT_PATH: { exit: "usage", summary: "The output path is a directory, a device, a FIFO or a socket, or its folder does not exist." },
  E_INTERRUPTED: { exit: "interrupted", summary: "The operation was interrupted; no output was left behind." },

  // runtime, eval and run
  E_MODEL_SHAPE: { exit: "badInput", summary: "A tensor's shape disagrees with the model's dimensions, so the runtime cannot run it." },
  E_CONTEXT_FULL: { exit: "usage", summary: "More tokens than the context length the model was loaded with." },
  E_TOKENIZER_MISSING: { exit: "badInput", summary: "The model has no tokenizer the runtime can use: pass token ids instead of text." },
  E_EVAL_INCOMPATIBLE: { exit: "badInput", summary: "The two models of an eval cannot be compared (different vocabularies)." },
  E_EVAL_THRESHOLD: { exit: "validationFailed", summary: "eval: the converted model's logits missed a threshold." },
  E_NPY: { exit: "badInput", summary: "A .npy file is malformed or not a float32 C-order array." },

  E_INTERNAL: { exit: "internal", summary: "A bug in b158: please report it." },
} as const satisfies Record<string, { exit: ExitClass; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface B158ErrorOptions {
  /** One actionable sentence: what the user can do next. */
  hint?: string;
  /** Machine-readable facts (file, tensor, observed, limit...). Shown in --json output. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class B158Error extends Error {
  override readonly name = "B158Error";
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;
  /** Read by oclif's handler to choose the exit status. */
  readonly oclif: { exit: number };
  /** Read by oclif's pretty printer ("Try this: ..."). */
  readonly suggestions: string[] | undefined;

  constructor(code: ErrorCode, message: string, options: B158ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = EXIT[ERROR_CODES[code].exit];
    this.hint = options.hint;
    this.details = options.details ?? {};
    this.oclif = { exit: this.exitCode };
    this.suggestions = options.hint === undefined ? undefined : [options.hint];
  }

  /** The shape --json consumers get: stable, no stack. */
  toJSON(): { code: ErrorCode; message: string; hint?: string; details: Record<string, unknown>; exit: number } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      details: this.details,
      exit: this.exitCode,
    };
  }
}

export function isB158Error(value: unknown): value is B158Error {
  return value instanceof B158Error;
}

/** Wraps a Node fs error as E_IO, naming the file; passes B158Errors through unchanged. */
export function ioError(file: string, action: string, cause: unknown): B158Error {
  if (cause instanceof B158Error) return cause;
  const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
  const reason = cause instanceof Error ? cause.message : String(cause);
  const hint =
    errno === "ENOSPC"
      ? "The disk is full: free space or write elsewhere."
      : errno === "EACCES" || errno === "EPERM"
        ? "Check the file permissions."
        : undefined;
  return new B158Error("E_IO", `${file}: cannot ${action} (${reason})`, {
    ...(hint === undefined ? {} : { hint }),
    details: { file, errno },
    cause,
  });
}

/**
 * E_INTERRUPTED for `what` ("conversion", "export", "pull") of `file`. Commands abort their
 * AbortSignal with the name of the signal that arrived (SIGINT, SIGTERM, SIGHUP); it is named.
 */
export function interruptedError(file: string, what: string, signal?: AbortSignal, left = "nothing was left at the output path"): B158Error {
  const name = typeof signal?.reason === "string" && /^SIG[A-Z]+$/.test(signal.reason) ? ` by ${signal.reason}` : "";
  return new B158Error("E_INTERRUPTED", `${file}: ${what} interrupted${name}; ${left}`, { details: { file } });
}
