import { formatBytes } from "../report/format.js";
import { DEFAULT_ENDPOINT } from "./env.js";
import type { PublishedFile, RuntimeFit } from "./published-file.js";

/**
 * The model card (README.md) `b158 push` writes: front matter the Hub reads (base_model with
 * base_model_relation: quantized, license, tags), a table of the files, and per file the runtimes
 * that load it with the exact commands to run it. Every command block is meant to work when pasted
 * as it is into a shell in an empty folder (test/hub-card.spec.ts runs them against the mock Hub):
 * the first block downloads the files into ./<name>, the others use them from there. File names
 * are plain (push refuses others), so they need no quoting in commands or Markdown.
 */
export interface CardInput {
  readonly repo: string;
  readonly branch: string;
  /** HF_ENDPOINT: links point there, and the commands set it when it is not the public Hub. */
  readonly endpoint: string;
  readonly files: readonly PublishedFile[];
  readonly baseModels: readonly string[];
  readonly license: string | null;
  readonly tool: { readonly name: string; readonly version: string };
}

export const CARD_PROMPT = "Once upon a time";

export function modelCard(input: CardInput): string {
  const { repo, endpoint, files } = input;
  const name = repo.split("/")[1]!;
  const layouts = [...new Set(files.flatMap((f) => (f.layout === null ? [] : [f.layout])))].sort();
  const formats = [...new Set(files.map((f) => f.format))].sort();
  const front = [
    "---",
    ...(input.baseModels.length === 1 ? [`base_model: ${input.baseModels[0]}`] : input.baseModels.length > 1 ? ["base_model:", ...input.baseModels.map((s) => `  - ${s}`)] : []),
    ...(input.baseModels.length > 0 ? ["base_model_relation: quantized"] : []),
    ...(input.license === null ? [] : [`license: ${input.license}`]),
    `library_name: ${formats.includes("b158") ? "b158" : "gguf"}`,
    "pipeline_tag: text-generation",
    "tags:",
    ...["bitnet", "ternary", "1.58-bit", "b158", ...(formats.includes("gguf") ? ["gguf"] : []), ...layouts].map((t) => `  - ${t}`),
    "---",
  ];
  const origin = input.baseModels.length > 0 ? input.baseModels.map((s) => `[${s}](${endpoint}/${s})`).join(", ") : "a local checkpoint";
  const commits = [...new Set(files.flatMap((f) => (f.source.commit === undefined ? [] : [f.source.commit])))];
  const rows = files.map(
    (f) =>
      `| \`${f.path}\` | ${f.format === "b158" ? ".b158" : "GGUF"} | ${f.layout ?? "-"} | ${formatBytes(f.size)} | ${f.bitsPerWeight["ternary-linear"]?.toFixed(3) ?? "-"} | ${f.bitsPerWeight.file!.toFixed(3)} | \`${f.sha256.slice(0, 16)}…\` |`,
  );
  const b158 = `npx --yes ${input.tool.name}@${input.tool.version}`;
  const patterns = [...new Set(files.map((f) => (f.format === "b158" ? "*.b158" : "*.gguf")))].sort();
  const download = [
    ...(endpoint === DEFAULT_ENDPOINT ? [] : [`export HF_ENDPOINT=${shell(endpoint)}`]),
    `${b158} pull ${repo}${input.branch === "main" ? "" : `@${input.branch}`} ${patterns.map((p) => `--include '${p}'`).join(" ")} --local-dir ${name}`,
  ];
  return [
    ...front,
    "",
    `# ${name}`,
    "",
    `Ternary (BitNet b1.58) weights of ${origin}${commits.length === 1 ? ` at commit \`${commits[0]}\`` : ""}, packed by ${input.tool.name} ${input.tool.version} for the runtimes below.` +
      (input.license === null ? " The source's license could not be determined: check it before you use these files." : ` License: \`${input.license}\`, as the source's.`),
    "",
    "| file | format | layout | size | bits/weight (ternary) | bits/weight (file) | sha256 |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    "## How to load",
    "",
    `Download the files into \`./${name}\` (Node.js 20 or newer; every file is checked against the Hub's sha256):`,
    "",
    "```sh",
    ...download,
    "```",
    "",
    ...files.flatMap((f) => fileSection(f, `${name}/${f.path}`, b158, new Set(files.map((g) => g.path)))),
    "`b158-manifest.json` lists each file's hash, layout, source and conversion options, and the runtimes that load it.",
    "",
  ].join("\n");
}

function fileSection(file: PublishedFile, local: string, b158: string, published: ReadonlySet<string>): string[] {
  const wrong = file.runtimes.filter((r) => r.computesModel === false);
  const lines = [`### \`${file.path}\``, ""];
  if (file.format === "b158") {
    const exports = file.runtimes.filter((r) => r.via === "export" && r.computesModel !== false);
    const gguf = `${file.path.replace(/\.b158$/, "")}.gguf`;
    // a GGUF of that name in this repo is where an export would go: download it instead
    const exportHere = exports.length > 0 && !published.has(gguf);
    lines.push(
      `A .b158 container${file.layout === null ? "" : ` (${file.layout})`}: check it and run it in b158's own runtime${exportHere ? `, or export it to a GGUF for ${names(exports)}` : ""}.${exports.length > 0 && !exportHere ? ` This repo also holds \`${gguf}\` (below).` : ""}`,
      "",
      ...wrongOutputs(file, wrong),
      "```sh",
      `${b158} validate ${local}`,
      `${b158} run ${local} --prompt "${CARD_PROMPT}" -n 32`,
      ...(exportHere ? [`${b158} export ${local} -o ${local.replace(/\.b158$/, "")}.gguf`] : []),
      "```",
      "",
    );
    return lines;
  }
  const loads = file.runtimes.filter((r) => r.via === "file");
  const good = loads.filter((r) => r.computesModel !== false);
  lines.push(`A GGUF${file.layout === null ? "" : ` (${file.layout.toUpperCase()})`}; loads in ${loads.length > 0 ? names(loads) : "none of the runtimes b158 knows"}.`, "", ...wrongOutputs(file, wrong));
  if (loads.length > 0 && good.length === 0) {
    lines.push("None of them computes this model from this file: no command is given for it.", "");
    return lines;
  }
  const llama = good.filter((r) => r.id === "llama.cpp" || r.id === "prismml");
  const bitnet = good.filter((r) => r.id.startsWith("bitnet.cpp"));
  if (llama.length > 0) {
    lines.push(
      `With ${llama.some((r) => r.id === "llama.cpp") ? "llama.cpp" : "PrismML's llama.cpp fork"}${file.layout === "q2_0" ? " (build b9917 or later: older builds do not have Q2_0)" : ""}:`,
      "",
      "```sh",
      `llama-cli -m ${local}   # chat`,
      `llama-completion -m ${local} -no-cnv -p "${CARD_PROMPT}" -n 64   # plain completion`,
      "```",
      "",
    );
  }
  if (bitnet.length > 0) {
    const tl = file.layout === "tl1" || file.layout === "tl2";
    lines.push(
      `With bitnet.cpp (github.com/microsoft/BitNet; ${names(bitnet)}), from a checkout built with its \`setup_env.py\`${tl ? ` and ${file.layout!.toUpperCase()} kernels generated for this model's shapes` : ""}; replace \`path/to/BitNet\` with yours:`,
      "",
      "```sh",
      `model="$PWD/${local}"`,
      `(cd path/to/BitNet && python run_inference.py -m "$model" -p "${CARD_PROMPT}" -n 64)`,
      "```",
      "",
    );
  }
  return lines;
}

/** One warning for the runtimes that load the model but compute another FFN activation than it needs. */
function wrongOutputs(file: PublishedFile, wrong: readonly RuntimeFit[]): string[] {
  if (wrong.length === 0) return [];
  const computed = [...new Set(wrong.map((r) => r.activation))].join(" / ");
  const exported = wrong.every((r) => r.via === "export");
  return [
    `**Wrong outputs in ${names(wrong)}${exported ? " (from an exported GGUF)" : ""}:** ${wrong.length === 1 ? "it computes" : "they compute"} a ${computed} FFN for this model, which needs ${file.activation}; the file loads and runs there, and computes something else.`,
    "",
  ];
}

function names(runtimes: readonly RuntimeFit[]): string {
  return runtimes.map((r) => r.label).join(", ");
}

/** A shell word: as it is when it is plainly safe, else single-quoted. */
function shell(word: string): string {
  return /^[A-Za-z0-9._/:@=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
