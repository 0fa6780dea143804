import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fuzz, reproducer } from "./fuzz.js";
import { TARGETS, type TargetName } from "./targets.js";

/**
 * `npm run fuzz`: long seeded mutation runs over the three readers (GGUF, safetensors checkpoints
 * with their config and index, .b158), as `inspect` and `validate` use them. Every failure prints
 * the command that replays it alone; `--case N` replays and keeps that case's files.
 *
 *   npm run fuzz -- [--iterations N] [--seed S] [--target gguf|safetensors|b158]... [--minutes M]
 *                   [--deep] [--case N] [--time-cap MS] [--growth-cap MB] [--heap MB]
 *
 * --deep also converts each mutated checkpoint and exports each mutated .b158 (slower).
 *
 * FUZZ_ITERATIONS and FUZZ_SEED stand in for the flags.
 */
const { values } = parseArgs({
  options: {
    iterations: { type: "string" },
    seed: { type: "string" },
    target: { type: "string", multiple: true },
    minutes: { type: "string" },
    case: { type: "string" },
    "time-cap": { type: "string" },
    "growth-cap": { type: "string" },
    heap: { type: "string" },
    deep: { type: "boolean" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log("npm run fuzz -- [--iterations N] [--seed S] [--target gguf|safetensors|b158]... [--minutes M] [--deep] [--case N] [--time-cap MS] [--growth-cap MB] [--heap MB]");
  process.exit(0);
}
const number = (text: string | undefined, fallback: number): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${text}`);
  return n;
};
const seed = number(values.seed ?? process.env.FUZZ_SEED, Date.now() % 2 ** 31);
const iterations = number(values.iterations ?? process.env.FUZZ_ITERATIONS, 2000);
const targets = (values.target ?? [...TARGETS]).flatMap((t) => t.split(",")) as TargetName[];
for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}: one of ${TARGETS.join(", ")}`);
const replay = values.case === undefined ? undefined : [number(values.case, 0)];
const dir = join(process.cwd(), ".tmp", "fuzz");
await mkdir(dir, { recursive: true });

console.log(`fuzzing ${targets.join(", ")}: seed ${seed}, ${replay ? `case ${replay[0]}` : `${iterations} cases each`}`);
let done = 0;
const report = await fuzz({
  seed,
  iterations,
  targets,
  dir,
  ...(replay ? { only: replay, keep: true } : {}),
  ...(values.deep ? { deep: true } : {}),
  ...(values.minutes === undefined ? {} : { budgetMs: number(values.minutes, 0) * 60_000 }),
  timeCapMs: number(values["time-cap"], 5000),
  growthCapMb: number(values["growth-cap"], 128),
  heapMb: number(values.heap, 512),
  onResult: (result) => {
    done++;
    if (replay) console.log(`${result.target} case ${result.index}: ${result.outcome} in ${result.ms.toFixed(1)} ms (${result.steps.join("; ")}); files in ${result.dir}`);
    else if (done % 500 === 0) console.log(`  ${done} cases`);
  },
});
console.log(`${report.cases} cases in ${report.seconds.toFixed(1)} s; outcomes: ${Object.entries(report.byOutcome).sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o} ${n}`).join(", ")}`);
if (report.slowest) console.log(`slowest: ${report.slowest.target} case ${report.slowest.index}, ${report.slowest.ms.toFixed(0)} ms; most memory held after a case: ${report.maxGrowthMb.toFixed(1)} MB`);
for (const f of report.failures) {
  console.log(`\nFAILED ${f.target} case ${f.index} (${f.steps.join("; ")}): ${f.reason}`);
  console.log(`  reproduce: ${reproducer(f, values.deep)}`);
}
process.exitCode = report.failures.length > 0 ? 1 : 0;
