import { join } from "node:path";
import { parentPort, threadId, workerData } from "node:worker_threads";
import { B158Error, ERROR_CODES } from "../../src/errors.js";
import { buildCorpus, caseRandom, generate, run, writeInput, type Corpus, type TargetName } from "./targets.js";

/**
 * The fuzzer's worker thread: builds (or reuses) the seed corpus, then runs the cases the main
 * thread sends, one at a time. The main thread times each case and gives the worker a capped
 * heap, so a case that hangs or exhausts memory is stopped and reported, not waited for.
 */
export interface CaseRequest {
  readonly target: TargetName;
  readonly seed: number;
  readonly index: number;
  /** Keep the case's files (for a reproducer). */
  readonly keep?: boolean;
  /** Also convert (checkpoints) and export (.b158 files). */
  readonly deep?: boolean;
}

export interface CaseResult {
  readonly target: TargetName;
  readonly index: number;
  /** "ok", or the B158Error code the input was refused with. */
  readonly outcome: string;
  /** Set when the case broke a rule: a failure that is not a coded B158Error. */
  readonly failure?: string;
  readonly ms: number;
  /** Heap and ArrayBuffer bytes held right after the case, minus before. */
  readonly growth: number;
  readonly steps: readonly string[];
  readonly dir: string;
}

const { corpusDir, workDir } = workerData as { corpusDir: string; workDir: string };
const corpus: Corpus = await buildCorpus(corpusDir);

async function handle(request: CaseRequest): Promise<CaseResult> {
  const input = generate(request.target, corpus, caseRandom(request.seed, request.target, request.index));
  const dir = join(workDir, request.keep ? `${request.target}-${request.seed}-${request.index}` : `case-${threadId}`);
  const path = await writeInput(dir, input);
  const before = process.memoryUsage();
  const started = performance.now();
  let outcome = "ok";
  let failure: string | undefined;
  try {
    await run(request.target, path, request.deep ?? false, join(dir, "output"));
  } catch (error) {
    if (error instanceof B158Error && error.code in ERROR_CODES) outcome = error.code;
    // a code, but the one that says "a bug in b158"
    if (error instanceof B158Error && error.code === "E_INTERNAL") failure = `E_INTERNAL: ${error.message}\n${error.stack ?? ""}`;
    else if (!(error instanceof B158Error && error.code in ERROR_CODES)) failure = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error);
  }
  const ms = performance.now() - started;
  const after = process.memoryUsage();
  const growth = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  return { target: request.target, index: request.index, outcome, ...(failure === undefined ? {} : { failure }), ms, growth, steps: input.steps, dir };
}

parentPort!.on("message", (request: CaseRequest) => {
  handle(request).then(
    (result) => parentPort!.postMessage(result),
    (error: unknown) => parentPort!.postMessage({ target: request.target, index: request.index, outcome: "harness", failure: `the harness failed: ${String(error)}`, ms: 0, growth: 0, steps: [], dir: "" } satisfies CaseResult),
  );
});
parentPort!.postMessage({ ready: true });
