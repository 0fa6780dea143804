import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { abortOnInterrupt } from "../cli/interrupt.js";
import { activationsFlag, parseNumber, parseTokenList, threadsFlag, tokensFlag } from "../cli/runtime-flags.js";
import { B158Error } from "../errors.js";
import { writeNpy } from "../formats/npy/npy.js";
import { renderGenerationStats } from "../report/render-eval.js";
import { loadModel, openModelSource } from "../runtime/model.js";
import { loadTokenizer, type Tokenizer } from "../runtime/tokenizer.js";
import { TOOL } from "../version.js";

export interface RunResult {
  readonly schemaVersion: 1;
  readonly tool: typeof TOOL;
  readonly model: {
    readonly file: string;
    readonly kind: string;
    readonly architecture: string;
    readonly activation: string;
    readonly activations: string;
    readonly backend: string;
    readonly threads: number;
    readonly contextLength: number;
    readonly weightBytes: number;
    readonly head: string;
  };
  readonly prompt: { readonly text: string | null; readonly tokens: readonly number[] };
  readonly generated: { readonly text: string | null; readonly tokens: readonly number[] };
  readonly stopReason: "eos" | "length";
  readonly sampling: { readonly temperature: number; readonly topK: number; readonly topP: number; readonly seed: number };
  readonly stats: {
    readonly promptTokens: number;
    readonly promptSeconds: number;
    readonly promptTokensPerSecond: number;
    readonly generatedTokens: number;
    readonly generationSeconds: number;
    readonly generationTokensPerSecond: number;
  };
  readonly logitsOut: string | null;
}

export default class Run extends B158Command {
  static override summary = "Generate text with a .b158 in b158's own runtime: no Python, no C++.";
  static override description = `Loads the model (a .b158, a GGUF b158 wrote, or a checkpoint) with its weights kept packed, tokenizes the prompt with the tokenizer the file embeds, and streams the generated text as it comes. Greedy by default (--temperature 0); with a temperature, top-k and top-p sample from a seeded generator, so the same flags give the same text. Prompt and generation speed go to stderr at the end. Generation stops at the model's end-of-sequence token or after -n tokens.`;

  static override examples = [
    { description: "Greedy generation from the bundled example (after converting it)", command: "<%= config.bin %> <%= command.id %> example.b158 --prompt \"The quick brown fox\" -n 32" },
    { description: "Sampled, reproducibly", command: "<%= config.bin %> <%= command.id %> model.b158 --prompt \"Once upon a time\" --temperature 0.8 --top-k 40 --top-p 0.95 --seed 7" },
    { description: "Token ids in, the prompt's logits out (NumPy)", command: "<%= config.bin %> <%= command.id %> model.b158 --tokens 128000,791,4062 -n 0 --logits-out prompt.npy" },
    { description: "In scripts: JSON with tokens, text and speed", command: "<%= config.bin %> <%= command.id %> model.b158 --prompt \"Hello\" --json" },
  ];

  static override enableJsonFlag = true;
  static override args = { file: Args.string({ required: true, description: "The model: a .b158 file, a .gguf b158 wrote, a checkpoint directory, or a Hub model hf://org/name[@revision]." }) };
  static override flags = {
    prompt: Flags.string({ char: "p", description: "The prompt text (tokenized with the model's tokenizer, BOS included).", exclusive: ["tokens"] }),
    tokens: tokensFlag("Prompt token ids instead of text, e.g. 1,2,3."),
    "max-tokens": Flags.integer({ char: "n", min: 0, default: 64, description: "Tokens to generate at most." }),
    temperature: Flags.string({ default: "0", description: "0: greedy; above 0: sample from softmax(logits / temperature).", helpValue: "<t>" }),
    "top-k": Flags.integer({ min: 0, default: 0, description: "Sample among the k most likely tokens only (0: all)." }),
    "top-p": Flags.string({ default: "1", description: "Sample among the most likely tokens whose probability adds up to p (1: all).", helpValue: "<p>" }),
    seed: Flags.integer({ default: 0, description: "Seed of the sampling generator: the same seed gives the same text." }),
    "ignore-eos": Flags.boolean({ description: "Keep generating past the end-of-sequence token." }),
    activations: activationsFlag,
    threads: threadsFlag,
    "logits-out": Flags.string({ description: "Write the prompt positions' logits to FILE.npy (NumPy float32 [prompt tokens, vocab]).", helpValue: "<file.npy>" }),
    "int8-head": Flags.boolean({
      description: "Run the output head as int8 rows (quantized at load, one scale per row): about half its memory traffic and time, at a small change of the logits. Off by default; eval never uses it.",
    }),
    ...progressFlags,
  };

  async run(): Promise<RunResult> {
    const { args, flags } = await this.parse(Run);
    if (flags.prompt === undefined && flags.tokens === undefined) throw new B158Error("E_USAGE", "give a prompt: --prompt \"...\" or --tokens 1,2,3");
    const temperature = parseNumber(flags.temperature, "--temperature")!;
    const topP = parseNumber(flags["top-p"], "--top-p")!;
    if (temperature < 0) throw new B158Error("E_USAGE", `--temperature ${temperature} must be >= 0`);
    if (!(topP > 0 && topP <= 1)) throw new B158Error("E_USAGE", `--top-p ${topP} must be in (0, 1]`);
    const json = this.jsonEnabled();
    const interrupt = abortOnInterrupt();
    const progress = this.progress(flags.quiet);
    try {
      // tokenize first: the prompt's length sizes the KV cache
      let promptTokens: number[];
      let tokenizer: Tokenizer | undefined;
      if (flags.tokens !== undefined) promptTokens = parseTokenList(flags.tokens);
      else {
        const source = await openModelSource(args.file);
        try {
          tokenizer = loadTokenizer(source.tokenizerFiles, source.label);
          if (tokenizer === undefined) throw new B158Error("E_TOKENIZER_MISSING", `${args.file}: has no tokenizer.json or tokenizer.model`, { hint: "Pass token ids with --tokens 1,2,3." });
          promptTokens = tokenizer.encode(flags.prompt!);
        } finally {
          await source.close();
        }
      }
      const maxTokens = flags["max-tokens"];
      let loading = false;
      const model = await loadModel(args.file, {
        activations: flags.activations,
        contextLength: promptTokens.length + Math.max(1, maxTokens),
        ...(flags.threads === undefined ? {} : { threads: flags.threads }),
        int8Head: flags["int8-head"],
        ...(tokenizer === undefined ? {} : { tokenizer }),
        signal: interrupt.signal,
        onProgress: (p) => {
          if (!loading) progress.phase(`loading ${args.file}`, { total: p.total, unit: "tensors" });
          loading = true;
          progress.update({ done: p.done, item: p.tensor });
        },
      });
      progress.end();
      try {
        const generation = model.generate(promptTokens, {
          maxTokens,
          temperature,
          topK: flags["top-k"],
          topP,
          seed: flags.seed,
          stopAtEos: !flags["ignore-eos"],
          promptLogits: flags["logits-out"] !== undefined,
          signal: interrupt.signal,
        });
        for await (const piece of generation) {
          if (json) continue;
          process.stdout.write(model.tokenizer === undefined ? `${piece.token} ` : piece.text);
        }
        const stats = generation.stats!;
        if (!json) {
          process.stdout.write("\n");
          if (!flags.quiet) process.stderr.write(`${renderGenerationStats(stats)}\n`);
        }
        if (flags["logits-out"] !== undefined) await writeNpy(flags["logits-out"], stats.promptLogits!, [promptTokens.length, model.spec.vocabSize]);
        return {
          schemaVersion: 1,
          tool: TOOL,
          model: {
            file: args.file,
            kind: model.info.kind,
            architecture: model.spec.architecture,
            activation: model.spec.activation,
            activations: model.activations,
            backend: model.kernels.backend,
            threads: model.kernels.threads,
            contextLength: model.contextLength,
            weightBytes: model.weightBytes,
            head: model.headFormat,
          },
          prompt: { text: flags.prompt ?? null, tokens: promptTokens },
          generated: { text: model.tokenizer === undefined ? null : stats.text, tokens: stats.tokens },
          stopReason: stats.stopReason,
          sampling: { temperature, topK: flags["top-k"], topP, seed: flags.seed },
          stats: {
            promptTokens: promptTokens.length,
            promptSeconds: stats.promptSeconds,
            promptTokensPerSecond: stats.promptTokensPerSecond,
            generatedTokens: stats.tokens.length,
            generationSeconds: stats.generationSeconds,
            generationTokensPerSecond: stats.generationTokensPerSecond,
          },
          logitsOut: flags["logits-out"] ?? null,
        };
      } finally {
        await model.close();
      }
    } finally {
      progress.end();
      interrupt.dispose();
    }
  }
}
