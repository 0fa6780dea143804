import { readFile } from "node:fs/promises";
import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { abortOnInterrupt } from "../cli/interrupt.js";
import { evalProgress } from "../cli/progress.js";
import { weightsFlag } from "../cli/shared-flags.js";
import { activationsFlag, parseNumber, parseTokenList, threadsFlag, tokensFlag } from "../cli/runtime-flags.js";
import { B158Error, ioError } from "../errors.js";
import { renderEvalReport } from "../report/render-eval.js";
import { DEFAULT_THRESHOLDS, evaluate, type EvalReport, type EvalThresholds } from "../runtime/eval.js";
import { TOOL } from "../version.js";

export default class Eval extends B158Command {
  static override summary = "Check that a converted model computes what its source computes: logits side by side.";
  static override description = `Runs the same tokens through the source checkpoint (read by its own framework's semantics: absmean of latent weights, transformers' unpacking and scale convention of packed ones) and through the converted .b158 (its packed payloads as they are), both in b158's runtime, and reports per position and summarised: the cosine of the logits, top-1 agreement, KL(source || converted), and each side's perplexity on the text. A GGUF that b158 wrote can be the converted side, or a third one (--gguf). An embedding model (BitNet-embedding) is judged by the cosine of its pooled embeddings of the text and of each sentence; its logits are reported.

For lossless conversions (repacking, absmean of latent weights) the thresholds below decide, and the exit status is ${4} when one is missed. Lossy conversions (--ternarize of a float model) are reported only, unless thresholds are given explicitly. Defaults and why: docs/eval.md.`;

  static override examples = [
    { description: "Check a conversion of the bundled example", command: "<%= config.bin %> <%= command.id %> fixtures/example example.b158" },
    { description: "Your own text, and the logits for numpy", command: "<%= config.bin %> <%= command.id %> ./bitnet-b1.58-2B-4T model.b158 --text-file sample.txt --logits-out logits/" },
    { description: "Token ids instead of text, float activations", command: "<%= config.bin %> <%= command.id %> ./model model.b158 --tokens 128000,791,4062 --activations float" },
    { description: "In CI: the full report as JSON (exit 4 on a miss)", command: "<%= config.bin %> <%= command.id %> ./model model.b158 --json > eval.json" },
  ];

  static override enableJsonFlag = true;
  static override args = {
    source: Args.string({ required: true, description: "The source checkpoint: a directory, a .safetensors file, or a Hub model hf://org/name[@revision]." }),
    converted: Args.string({ required: true, description: "The converted file: a .b158, or a .gguf b158 wrote." }),
  };
  static override flags = {
    text: Flags.string({ description: "Text to evaluate on (default: a short English paragraph), tokenized with the source's tokenizer.", exclusive: ["text-file", "tokens"] }),
    "text-file": Flags.file({ exists: true, description: "Read the text from a file.", exclusive: ["text", "tokens"] }),
    tokens: tokensFlag("Token ids to evaluate on instead of text, e.g. 1,2,3."),
    activations: activationsFlag,
    "logits-out": Flags.directory({ description: "Write DIR/source.npy and DIR/converted.npy (NumPy float32 [positions, vocab]) for comparison with any other runtime.", helpValue: "<dir>" }),
    gguf: Flags.file({ exists: true, description: "Also compare this GGUF (one b158 wrote) with the source, as a third side." }),
    "min-cosine": Flags.string({ description: `Lowest cosine of the logits allowed at any position (default ${DEFAULT_THRESHOLDS.minCosine}).`, helpValue: "<x>" }),
    "min-embedding-cosine": Flags.string({ description: `Embedding models: lowest cosine of the pooled embeddings of any text (default ${DEFAULT_THRESHOLDS.minEmbeddingCosine}).`, helpValue: "<x>" }),
    "min-top1": Flags.string({ description: `Lowest fraction of positions whose top-1 tokens agree (default ${DEFAULT_THRESHOLDS.minTop1}).`, helpValue: "<fraction>" }),
    "max-kl": Flags.string({ description: `Highest mean KL(source || converted) in nats (default ${DEFAULT_THRESHOLDS.maxKl}).`, helpValue: "<nats>" }),
    "max-perplexity-delta": Flags.string({ description: `Highest relative perplexity difference (default ${DEFAULT_THRESHOLDS.maxPerplexityDelta}).`, helpValue: "<fraction>" }),
    threads: threadsFlag,
    weights: weightsFlag,
    ...progressFlags,
  };

  async run(): Promise<(EvalReport & { schemaVersion: 1; tool: typeof TOOL }) | undefined> {
    const { args, flags } = await this.parse(Eval);
    let text = flags.text;
    if (flags["text-file"] !== undefined) {
      const file = flags["text-file"];
      text = await readFile(file, "utf8").catch((cause: unknown) => Promise.reject(ioError(file, "read", cause)));
    }
    const thresholds: Partial<Record<keyof EvalThresholds, number>> = {};
    const given: [keyof EvalThresholds, "min-cosine" | "min-embedding-cosine" | "min-top1" | "max-kl" | "max-perplexity-delta"][] = [
      ["minCosine", "min-cosine"],
      ["minEmbeddingCosine", "min-embedding-cosine"],
      ["minTop1", "min-top1"],
      ["maxKl", "max-kl"],
      ["maxPerplexityDelta", "max-perplexity-delta"],
    ];
    for (const [metric, flag] of given) {
      const n = parseNumber(flags[flag], `--${flag}`);
      if (n !== undefined) thresholds[metric] = n;
    }
    const interrupt = abortOnInterrupt();
    const progress = this.progress(flags.quiet);
    try {
      const report = await evaluate(args.source, args.converted, {
        ...(text === undefined ? {} : { text }),
        ...(flags.tokens === undefined ? {} : { tokens: parseTokenList(flags.tokens) }),
        activations: flags.activations,
        thresholds,
        ...(flags["logits-out"] === undefined ? {} : { logitsOut: flags["logits-out"] }),
        ...(flags.gguf === undefined ? {} : { gguf: flags.gguf }),
        ...(flags.threads === undefined ? {} : { threads: flags.threads }),
        ...(flags.weights === undefined ? {} : { latent: flags.weights === "quantized" ? ("stored" as const) : ("online" as const) }),
        signal: interrupt.signal,
        onProgress: evalProgress(progress),
      });
      progress.end();
      const result = { schemaVersion: 1 as const, tool: TOOL, ...report };
      if (!report.pass) {
        const exit = new B158Error("E_EVAL_THRESHOLD", "").exitCode;
        if (this.jsonEnabled()) {
          // one JSON document on stdout, with "pass": false; the status says failed
          this.logJson(result);
          process.exitCode = exit;
          return undefined;
        }
        this.log(renderEvalReport(report));
        const missed = report.comparisons.flatMap((c) => c.checks.filter((k) => k.enforced && !k.pass).map((k) => `${c.side} ${k.metric} ${k.value} (threshold ${k.threshold})`));
        throw new B158Error("E_EVAL_THRESHOLD", `${args.converted}: missed ${missed.join("; ")}`, {
          details: { missed },
          hint: "The conversion changed what the model computes: check the scale convention, the layout and the activation (docs/eval.md).",
        });
      }
      this.log(renderEvalReport(report));
      return result;
    } finally {
      progress.end();
      interrupt.dispose();
    }
  }
}
