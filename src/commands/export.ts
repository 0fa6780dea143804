import { stat } from "node:fs/promises";
import { Args, Flags } from "@oclif/core";
import { B158Command, progressFlags } from "../cli/base-command.js";
import { abortOnInterrupt } from "../cli/interrupt.js";
import { tensorLine } from "../cli/progress.js";
import { B158Error } from "../errors.js";
import { exportGguf, type GgufExportSummary } from "../export/gguf.js";
import { isB158File, isGgufFile } from "../formats/b158/detect.js";
import { openB158File } from "../formats/b158/read.js";
import { refuseGgufInput } from "../formats/gguf/refusals.js";
import { GGUF_TARGET_IDS } from "../formats/gguf/targets.js";
import { plural } from "../report/format.js";
import { renderGgufExport } from "../report/render-gguf.js";

export const EMBEDDING_TYPES = ["f16", "q8_0", "f32", "bf16"] as const;
export const WEIGHT_TYPES = ["packed", "f32", "f16"] as const;

export default class Export extends B158Command {
  static override summary = "Write a GGUF from a .b158 file, for llama.cpp or bitnet.cpp.";
  static override description = `Needs only the .b158: it carries config.json and the tokenizer files. TQ1_0/TQ2_0 files are for mainline llama.cpp (arch bitnet, or llama with Q/K permuted for Llama-family checkpoints); I2_S, TL1 and TL2 files are for Microsoft's bitnet.cpp only (its own type ids; mainline cannot load them). --target picks which runtime's type ids to write (bitnet.cpp renumbered TL2 and the I2_S file type in 2026); the default is what published GGUFs use, and the file records it as b158.target. Every key and tensor written is listed in docs/gguf.md. The file is read back with the strict GGUF reader before it is reported; on any error nothing is left at the output path.`;

  static override examples = [
    { description: "TQ2_0 GGUF for llama.cpp", command: "<%= config.bin %> <%= command.id %> example.b158 -o example.gguf" },
    { description: "Smaller embeddings", command: "<%= config.bin %> <%= command.id %> model.b158 -o model.gguf --embeddings q8_0" },
    { description: "TL2 with the 2026 bitnet.cpp fork's ids (TL2 = 42)", command: "<%= config.bin %> <%= command.id %> model-tl2.b158 -o model.gguf --target bitnet.cpp-2026" },
    { description: "An F32 reference file with the same ternary weights", command: "<%= config.bin %> <%= command.id %> model.b158 -o model-f32.gguf --weights f32 --embeddings f32" },
  ];

  static override enableJsonFlag = true;
  static override args = { file: Args.string({ required: true, description: "The .b158 file to export (one b158 convert wrote)." }) };
  static override flags = {
    output: Flags.string({ char: "o", required: true, description: "The .gguf file to write.", helpValue: "<file>" }),
    force: Flags.boolean({ description: "Replace the output file if it exists." }),
    embeddings: Flags.option({ options: EMBEDDING_TYPES, default: "f16" as const, description: "Type of token_embd and output: f16, q8_0 (about half of f16), f32 or bf16." })(),
    target: Flags.option({ options: GGUF_TARGET_IDS, description: "The runtime whose type ids to write: llama.cpp (mainline), bitnet.cpp-2024 (the 2024-2025 fork: I2_S 36, TL1 38, TL2 39), bitnet.cpp-2026 (TL2 42, I2_S file type 41). Default: llama.cpp for TQ and float weights, bitnet.cpp-2024 for I2_S/TL." })(),
    weights: Flags.option({ options: WEIGHT_TYPES, default: "packed" as const, description: "packed keeps the .b158's ternary layout; f32/f16 write the same ternary weights as floats (reference files)." })(),
    ...progressFlags,
  };

  async run(): Promise<GgufExportSummary> {
    const { args, flags } = await this.parse(Export);
    if (await isGgufFile(args.file)) await refuseGgufInput(args.file, "export");
    if (!(await isB158File(args.file))) await refuseNonB158(args.file);
    if (flags.output.toLowerCase().endsWith(".b158")) {
      throw new B158Error("E_USAGE", `-o ${flags.output}: export writes a GGUF, which a .b158 name would mislabel`, { hint: "Name the output .gguf.", details: { output: flags.output } });
    }
    const interrupt = abortOnInterrupt();
    const progress = this.progress(flags.quiet);
    const file = await openB158File(args.file);
    try {
      const summary = await exportGguf(file, {
        output: flags.output,
        force: flags.force,
        embeddings: flags.embeddings,
        weights: flags.weights,
        ...(flags.target === undefined ? {} : { target: flags.target }),
        signal: interrupt.signal,
        onProgress: (p) => {
          if (p.done === 1) progress.phase(`writing ${flags.output}: ${plural(p.total, "tensor")}`, { total: p.bytesTotal, unit: "bytes", steps: p.total });
          progress.update({ done: p.bytesWritten, step: p.done, item: p.tensor, line: tensorLine(p.tensor, p.shape, p.fromLayout, p.type, undefined, p.bytes) });
        },
      });
      progress.end();
      this.log(renderGgufExport(summary));
      return summary;
    } finally {
      progress.end();
      await file.close();
      interrupt.dispose();
    }
  }
}

/** What export says of an input that is not a .b158: a checkpoint goes through convert; anything else is named as such. */
async function refuseNonB158(path: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new B158Error("E_SOURCE_NOT_FOUND", `${path}: no such file`, { details: { file: path }, hint: "Check the path of the .b158 file (b158 convert writes one)." });
  if (info.isDirectory() || path.toLowerCase().endsWith(".safetensors")) {
    throw new B158Error("E_SOURCE_UNRECOGNIZED", `${path}: is a checkpoint, not a .b158 file; export reads .b158 files`, {
      details: { file: path },
      hint: `b158 convert ${path} -o model.gguf --layout <layout> writes a GGUF from a checkpoint in one step.`,
    });
  }
  throw new B158Error("E_B158_MAGIC", `${path}: not a .b158 file: it does not start with the .b158 magic`, {
    details: { file: path },
    hint: "Pass a file b158 convert wrote; if this is one, it is damaged: convert again.",
  });
}
