import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { B158Error } from "../errors.js";
import { SentencePieceEncoder } from "../formats/sentencepiece/encode.js";
import { decodeSentencePieceModel } from "../formats/sentencepiece/read.js";
import type { TokenizerFiles } from "./sources/source.js";

/**
 * Text to token ids and back, from the tokenizer files a model ships: tokenizer.json through
 * @huggingface/tokenizers (the Hugging Face tokenizers library's own JavaScript port), or a
 * SentencePiece tokenizer.model through b158's reader and BPE encoder.
 */
export interface Tokenizer {
  readonly kind: "tokenizer.json" | "tokenizer.model";
  /** Ids of `text`, with the model's special tokens (a BOS) when `addSpecialTokens` (default true). */
  encode(text: string, options?: { readonly addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; special tokens are left out when `skipSpecialTokens` (default true). */
  decode(ids: readonly number[], options?: { readonly skipSpecialTokens?: boolean }): string;
}

export function loadTokenizer(files: TokenizerFiles, label: string): Tokenizer | undefined {
  let config: Record<string, unknown> = {};
  if (files.tokenizerConfig !== undefined) {
    try {
      config = JSON.parse(files.tokenizerConfig) as Record<string, unknown>;
    } catch {
      config = {};
    }
  }
  if (files.tokenizerJson !== undefined) {
    let json: object;
    try {
      json = JSON.parse(files.tokenizerJson) as object;
    } catch (cause) {
      throw new B158Error("E_TOKENIZER_MISSING", `${label}: tokenizer.json is not valid JSON`, { cause, details: { file: label } });
    }
    return hfTokenizer(json, config, label);
  }
  if (files.tokenizerModel !== undefined) {
    const encoder = new SentencePieceEncoder(decodeSentencePieceModel(files.tokenizerModel, `${label}: tokenizer.model`));
    const bos = encoder.model.trainer.bosId;
    // LlamaTokenizer adds BOS unless tokenizer_config.json says otherwise
    const addBos = config.add_bos_token !== false && bos >= 0;
    const addEos = config.add_eos_token === true && encoder.model.trainer.eosId >= 0;
    return {
      kind: "tokenizer.model",
      encode(text, options = {}) {
        const ids = encoder.encode(text);
        if (options.addSpecialTokens === false) return ids;
        return [...(addBos ? [bos] : []), ...ids, ...(addEos ? [encoder.model.trainer.eosId] : [])];
      },
      decode: (ids) => encoder.decode(ids),
    };
  }
  return undefined;
}

function hfTokenizer(json: object, config: Record<string, unknown>, label: string): Tokenizer {
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new HfTokenizer(json, config);
  } catch (cause) {
    throw new B158Error("E_TOKENIZER_MISSING", `${label}: tokenizer.json cannot be loaded (${(cause as Error).message})`, { cause, details: { file: label } });
  }
  return {
    kind: "tokenizer.json",
    encode: (text, options = {}) => tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids,
    decode: (ids, options = {}) => tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true, clean_up_tokenization_spaces: false }),
  };
}

/**
 * Text as tokens arrive, for streaming: decodes a window that starts a token or more before the new
 * ones (so a leading space survives), and holds back text that ends inside a UTF-8 sequence
 * (U+FFFD) until the rest arrives. A token that adds nothing to the window's text (a special token
 * the decode skips) leaves the window: a model that emits a run of them must not make every decode
 * longer than the last.
 */
export class TextStream {
  private readonly ids: number[];
  private prefix: number;
  private read: number;

  /** `context`: tokens already shown (the prompt); its last one anchors the first window. */
  constructor(
    private readonly tokenizer: Tokenizer,
    context: readonly number[],
  ) {
    this.ids = context.length > 0 ? [context.at(-1)!] : [];
    this.prefix = 0;
    this.read = this.ids.length;
  }

  push(id: number): string {
    this.ids.push(id);
    const window = this.ids.slice(this.prefix);
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const text = this.tokenizer.decode(window);
    if (this.read === this.ids.length - 1 && text === before) {
      this.ids.pop();
      return "";
    }
    if (text.length <= before.length || text.endsWith("\ufffd")) return "";
    this.prefix = this.read;
    this.read = this.ids.length;
    return text.slice(before.length);
  }

  /** Whatever is still held back. */
  flush(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const text = this.tokenizer.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return text.length > before.length ? text.slice(before.length) : "";
  }
}
