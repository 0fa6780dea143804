import { B158Error } from "../errors.js";
import { decodeSentencePieceModel } from "../formats/sentencepiece/read.js";
import { PIECE_TYPE } from "../formats/sentencepiece/spec.js";
import { isJsonObject, parseStrictJson, type JsonValue } from "../formats/strict-json.js";
import type { GgufKv } from "../formats/gguf/spec.js";
import type { Diagnostic } from "../model/diagnostics.js";

/**
 * The `tokenizer.*` GGUF metadata llama.cpp builds its vocabulary from, taken from the files a
 * .b158 carries: a SentencePiece `tokenizer.model` becomes `llama` (tokens, scores, types), a
 * byte-level BPE `tokenizer.json` becomes `gpt2` with the pre-tokenizer name llama.cpp knows it by.
 * The vocabulary is padded to the embedding's row count, as llama.cpp's converter does.
 */

/** llama.cpp token types (llama_token_type): the same numbers as SentencePiece's piece types. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** Pre-tokenizer regexes llama.cpp recognizes, by the `tokenizer.ggml.pre` name it expects. */
const KNOWN_PRE_TOKENIZERS: readonly { readonly pre: string; readonly pattern: string }[] = [
  {
    pre: "llama-bpe",
    pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  },
  // Qwen2 / Qwen3 (and Qwen3-Embedding): single digits
  {
    pre: "qwen2",
    pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  },
];

export interface TokenizerInput {
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly config: Readonly<Record<string, unknown>> | null;
  /** Rows of the embedding: the vocabulary is padded (or checked) to this. */
  readonly vocabSize: number;
  /** The source repo, when known (Falcon3 is recognized by name). */
  readonly repo?: string;
  /**
   * bitnet.cpp's embedding converter's rules: "qwen3" forces EOS to <|endoftext|> (the token
   * Qwen3-Embedding's tokenizer appends for last-token pooling) and sets add_eos_token; "gemma3"
   * writes Gemma's tokenizer.json as a SentencePiece vocabulary (spmFromTokenizerJson).
   */
  readonly embedding?: "qwen3" | "gemma3";
}

export interface TokenizerMetadata {
  readonly kvs: GgufKv[];
  readonly model: "llama" | "gpt2";
  readonly diagnostics: Diagnostic[];
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Parsed once per file: a Llama-3 tokenizer.json is ~9 MB and several steps read it. */
const parsed = new WeakMap<Uint8Array, JsonValue>();

function jsonFile(files: TokenizerInput["files"], name: string): { [key: string]: JsonValue } | undefined {
  const bytes = files[name];
  if (bytes === undefined) return undefined;
  try {
    let value = parsed.get(bytes);
    if (value === undefined) {
      value = parseStrictJson(text(bytes));
      parsed.set(bytes, value);
    }
    return isJsonObject(value) ? value : undefined;
  } catch (cause) {
    throw new B158Error("E_GGUF_EXPORT", `${name}: is not valid JSON`, { cause, details: { file: name }, hint: "The tokenizer files in the .b158 are damaged; convert again from a good checkpoint." });
  }
}

interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
}

/** Added tokens from tokenizer.json, tokenizer_config.json's added_tokens_decoder and added_tokens.json. */
function addedTokens(files: TokenizerInput["files"]): Map<number, AddedToken> {
  const found = new Map<number, AddedToken>();
  const tokenizer = jsonFile(files, "tokenizer.json");
  const list = tokenizer?.added_tokens;
  if (Array.isArray(list)) {
    for (const t of list) if (isJsonObject(t) && typeof t.id === "number" && typeof t.content === "string") found.set(t.id, { id: t.id, content: t.content, special: t.special === true });
  }
  const decoder = jsonFile(files, "tokenizer_config.json")?.added_tokens_decoder;
  if (isJsonObject(decoder)) {
    for (const [id, t] of Object.entries(decoder)) {
      if (isJsonObject(t) && typeof t.content === "string" && !found.has(Number(id))) found.set(Number(id), { id: Number(id), content: t.content, special: t.special === true });
    }
  }
  const plain = jsonFile(files, "added_tokens.json");
  if (plain !== undefined) for (const [content, id] of Object.entries(plain)) if (typeof id === "number" && !found.has(id)) found.set(id, { id, content, special: false });
  return found;
}

/**
 * Added tokens that look special (<|...|>, <...>, [...]) are control tokens too, whatever their
 * `special` flag: llama.cpp's converters and bitnet.cpp's embedding converter type them so.
 */
function looksSpecial(token: string): boolean {
  return token.length > 0 && /^(<\||<|\[)/.test(token) && /(\|>|>|\])$/.test(token);
}

function addedType(token: AddedToken): number {
  return token.special || looksSpecial(token.content) ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
}

export function tokenizerMetadata(input: TokenizerInput): TokenizerMetadata {
  const diagnostics: Diagnostic[] = [];
  const added = addedTokens(input.files);
  const kvs: GgufKv[] = [];
  let model: "llama" | "gpt2";
  let tokens: string[];
  if (input.embedding === "gemma3" && input.files["tokenizer.model"] === undefined) {
    model = "llama";
    const spm = spmFromTokenizerJson(input, added);
    tokens = spm.tokens;
    kvs.push(...spm.kvs);
  } else if (input.files["tokenizer.model"] !== undefined) {
    model = "llama";
    const spm = decodeSentencePieceModel(input.files["tokenizer.model"]);
    tokens = spm.pieces.map((p) => p.piece);
    const scores = spm.pieces.map((p) => p.score);
    const types: number[] = spm.pieces.map((p) => p.type);
    for (let id = tokens.length; id < input.vocabSize; id++) {
      const token = added.get(id);
      tokens.push(token?.content ?? `[PAD${id}]`);
      scores.push(-1000);
      types.push(token === undefined ? TOKEN_TYPE.unused : addedType(token));
    }
    checkSize(tokens.length, input.vocabSize);
    kvs.push(
      { key: "tokenizer.ggml.model", value: { type: "string", value: "llama" } },
      { key: "tokenizer.ggml.pre", value: { type: "string", value: "default" } },
      { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } },
      { key: "tokenizer.ggml.scores", value: { type: "array", itemType: "float32", value: scores } },
      { key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "int32", value: types } },
    );
    const unk = spm.pieces.findIndex((p) => p.type === PIECE_TYPE.UNKNOWN);
    if (unk >= 0) kvs.push({ key: "tokenizer.ggml.unknown_token_id", value: { type: "uint32", value: unk } });
  } else {
    const tokenizer = jsonFile(input.files, "tokenizer.json");
    const bpe = tokenizer?.model;
    if (!isJsonObject(bpe) || bpe.type !== "BPE" || !isJsonObject(bpe.vocab) || !Array.isArray(bpe.merges)) {
      throw new B158Error("E_GGUF_EXPORT", "the model has neither a SentencePiece tokenizer.model nor a BPE tokenizer.json", {
        hint: "GGUF needs the vocabulary; convert from a checkpoint directory that has its tokenizer files.",
      });
    }
    model = "gpt2";
    tokens = new Array<string>(input.vocabSize);
    const types = new Array<number>(input.vocabSize).fill(TOKEN_TYPE.unused);
    for (const [token, id] of Object.entries(bpe.vocab)) {
      if (typeof id !== "number" || id < 0 || id >= input.vocabSize) continue;
      tokens[id] = token;
      types[id] = TOKEN_TYPE.normal;
    }
    for (const t of added.values()) {
      if (t.id < 0 || t.id >= input.vocabSize) continue;
      tokens[t.id] = t.content;
      types[t.id] = addedType(t);
    }
    for (let id = 0; id < input.vocabSize; id++) if (tokens[id] === undefined) tokens[id] = `[PAD${id}]`;
    const merges = bpe.merges.map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));
    kvs.push(
      { key: "tokenizer.ggml.model", value: { type: "string", value: "gpt2" } },
      { key: "tokenizer.ggml.pre", value: { type: "string", value: preTokenizer(tokenizer!, input, diagnostics) } },
      { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } },
      { key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "int32", value: types } },
      { key: "tokenizer.ggml.merges", value: { type: "array", itemType: "string", value: merges } },
    );
  }
  kvs.push(...specialTokens(input, tokens, model));
  const template = chatTemplate(input.files);
  if (template !== undefined) kvs.push({ key: "tokenizer.chat_template", value: { type: "string", value: template } });
  return { kvs, model, diagnostics };
}

/**
 * Gemma3's tokenizer.json as a SentencePiece ("llama") vocabulary, as bitnet.cpp's embedding
 * converter builds it, so llama.cpp tokenizes with its SentencePiece path (spaces as "▁", byte
 * fallback): every id of the BPE vocabulary in order, scored by merge rank (the first merge that
 * makes the token: -rank; single characters 0), added tokens -1000 (control, or user-defined when
 * they neither are special nor look special), <0xHH> byte tokens 0 (byte), <unk> 0 (unknown), ids
 * the vocabulary skips "[PAD<id>]" -10000 (unused); no leading space is added.
 */
function spmFromTokenizerJson(input: TokenizerInput, added: ReadonlyMap<number, AddedToken>): { tokens: string[]; kvs: GgufKv[] } {
  const bpe = jsonFile(input.files, "tokenizer.json")?.model;
  if (!isJsonObject(bpe) || bpe.type !== "BPE" || !isJsonObject(bpe.vocab) || !Array.isArray(bpe.merges)) {
    throw new B158Error("E_GGUF_EXPORT", "Gemma3's tokenizer.json is not a BPE model with a vocab and merges", { hint: "Convert from a checkpoint with its original tokenizer.json." });
  }
  const mergeScore = new Map<string, number>();
  bpe.merges.forEach((m, rank) => {
    const result = Array.isArray(m) ? m.join("") : String(m).split(" ", 2).join("");
    if (!mergeScore.has(result)) mergeScore.set(result, -rank);
  });
  const reverse = new Map<number, string>();
  for (const [token, id] of Object.entries(bpe.vocab)) if (typeof id === "number") reverse.set(id, token);
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  for (let id = 0; id < input.vocabSize; id++) {
    const token = reverse.get(id);
    const extra = added.get(id);
    if (token === undefined) {
      tokens.push(`[PAD${id}]`);
      scores.push(-10000);
      types.push(TOKEN_TYPE.unused);
      continue;
    }
    tokens.push(token);
    if (extra !== undefined) {
      types.push(extra.special || looksSpecial(token) ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined);
      scores.push(-1000);
    } else if (/^<0x[0-9A-Fa-f]{2}>$/.test(token)) {
      types.push(TOKEN_TYPE.byte);
      scores.push(0);
    } else if (token === "<unk>") {
      types.push(TOKEN_TYPE.unknown);
      scores.push(0);
    } else {
      types.push(TOKEN_TYPE.normal);
      scores.push(mergeScore.get(token) ?? 0);
    }
  }
  return {
    tokens,
    kvs: [
      { key: "tokenizer.ggml.model", value: { type: "string", value: "llama" } },
      { key: "tokenizer.ggml.pre", value: { type: "string", value: "default" } },
      { key: "tokenizer.ggml.tokens", value: { type: "array", itemType: "string", value: tokens } },
      { key: "tokenizer.ggml.scores", value: { type: "array", itemType: "float32", value: scores } },
      { key: "tokenizer.ggml.token_type", value: { type: "array", itemType: "int32", value: types } },
      { key: "tokenizer.ggml.add_space_prefix", value: { type: "bool", value: false } },
    ],
  };
}

function checkSize(tokens: number, vocabSize: number): void {
  if (tokens > vocabSize) {
    throw new B158Error("E_GGUF_EXPORT", `the tokenizer has ${tokens} tokens but the embedding only ${vocabSize} rows`, { hint: "The tokenizer does not belong to these weights." });
  }
}

/** llama.cpp tells BPE pre-tokenizers apart by name; we recognize them by their split regex. */
function preTokenizer(tokenizer: { [key: string]: JsonValue }, input: TokenizerInput, diagnostics: Diagnostic[]): string {
  if (input.repo !== undefined && /falcon(3|-e)/i.test(input.repo)) return "falcon3";
  const patterns: string[] = [];
  const visit = (node: JsonValue | undefined): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isJsonObject(node)) {
      if (node.type === "Split" && isJsonObject(node.pattern) && typeof node.pattern.Regex === "string") patterns.push(node.pattern.Regex);
      visit(node.pretokenizers);
    }
  };
  visit(tokenizer.pre_tokenizer);
  for (const known of KNOWN_PRE_TOKENIZERS) if (patterns.includes(known.pattern)) return known.pre;
  diagnostics.push({
    severity: "warning",
    code: "W_GGUF_PRE_TOKENIZER",
    message: "the BPE pre-tokenizer is not one b158 recognizes; wrote tokenizer.ggml.pre = \"default\", which may split text differently from the original",
  });
  return "default";
}

function tokenId(value: unknown, tokens: readonly string[]): number | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < tokens.length) return value;
  if (Array.isArray(value)) return tokenId(value[0], tokens);
  const content = typeof value === "string" ? value : isJsonObject(value as JsonValue) && typeof (value as { content?: unknown }).content === "string" ? (value as { content: string }).content : undefined;
  if (content === undefined) return undefined;
  const id = tokens.indexOf(content);
  return id >= 0 ? id : undefined;
}

function specialTokens(input: TokenizerInput, tokens: readonly string[], model: "llama" | "gpt2"): GgufKv[] {
  const config = input.config ?? {};
  const tokenizerConfig = jsonFile(input.files, "tokenizer_config.json") ?? {};
  const generation = jsonFile(input.files, "generation_config.json") ?? {};
  const pick = (name: "bos" | "eos" | "pad") =>
    tokenId(config[`${name}_token_id`], tokens) ?? tokenId(generation[`${name}_token_id`], tokens) ?? tokenId(tokenizerConfig[`${name}_token`], tokens);
  const kvs: GgufKv[] = [];
  // Qwen3-Embedding's tokenizer appends <|endoftext|> (151643) and last-token pooling reads it: bitnet.cpp's converter makes it the EOS
  const endOfText = input.embedding === "qwen3" ? tokens.indexOf("<|endoftext|>") : -1;
  const ids: [string, number | undefined][] = [
    ["bos", pick("bos")],
    ["eos", endOfText >= 0 ? endOfText : pick("eos")],
    // Gemma3's vocabulary from tokenizer.json: its <unk>, in gguf-py SpecialVocab's order (bos, eos, unk, pad)
    ...(input.embedding === "gemma3" && input.files["tokenizer.model"] === undefined ? [["unknown", tokenId(tokenizerConfig.unk_token, tokens)] as [string, number | undefined]] : []),
    ["padding", pick("pad")],
  ];
  for (const [name, id] of ids) if (id !== undefined) kvs.push({ key: `tokenizer.ggml.${name}_token_id`, value: { type: "uint32", value: id } });
  const addBos = tokenizerConfig.add_bos_token;
  kvs.push({ key: "tokenizer.ggml.add_bos_token", value: { type: "bool", value: typeof addBos === "boolean" ? addBos : model === "llama" || postProcessorAddsBos(input.files) } });
  const addEos = tokenizerConfig.add_eos_token;
  kvs.push({ key: "tokenizer.ggml.add_eos_token", value: { type: "bool", value: addEos === true || input.embedding === "qwen3" } });
  return kvs;
}

/** Llama-3's tokenizer.json adds <|begin_of_text|> through a TemplateProcessing post-processor. */
function postProcessorAddsBos(files: TokenizerInput["files"]): boolean {
  const post = jsonFile(files, "tokenizer.json")?.post_processor;
  return post !== undefined && post !== null && JSON.stringify(post).includes("TemplateProcessing");
}

function chatTemplate(files: TokenizerInput["files"]): string | undefined {
  const fromConfig = jsonFile(files, "tokenizer_config.json")?.chat_template;
  if (typeof fromConfig === "string") return fromConfig;
  if (Array.isArray(fromConfig)) {
    const named = fromConfig.find((t) => isJsonObject(t) && t.name === "default");
    if (isJsonObject(named) && typeof named.template === "string") return named.template;
  }
  const jinja = files["chat_template.jinja"];
  return jinja === undefined ? undefined : text(jinja);
}
