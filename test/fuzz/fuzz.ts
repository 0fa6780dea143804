import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { TargetName } from "./targets.js";
import type { CaseRequest, CaseResult } from "./worker.js";

/**
 * The fuzzer's driver. Cases run in a worker thread with a capped heap; each must end within
 * `timeCapMs`, hold no more than `growthCapMb` more memory when it returns, and either succeed or
 * fail with a coded B158Error. A case that hangs is stopped by terminating the worker, one that
 * exhausts the heap kills only the worker; either is reported and a fresh worker goes on.
 */
export interface FuzzOptions {
  readonly seed: number;
  /** Cases per target. */
  readonly iterations: number;
  readonly targets: readonly TargetName[];
  /** Stop starting new cases after this long (the cases started all finish or time out). */
  readonly budgetMs?: number;
  readonly timeCapMs?: number;
  readonly growthCapMb?: number;
  /** The worker's old-generation heap, in MB: a case that needs more is a failure. */
  readonly heapMb?: number;
  /** Where seeds and cases are written (a temp folder by default, removed at the end). */
  readonly dir?: string;
  /** Only these case indexes (to replay a reproducer). */
  readonly only?: readonly number[];
  /** Keep every case's files under dir (for a reproducer). */
  readonly keep?: boolean;
  /** Also run convert on checkpoints and export on .b158 files. */
  readonly deep?: boolean;
  readonly onResult?: (result: CaseResult) => void;
}

export interface FuzzFailure {
  readonly target: TargetName;
  readonly seed: number;
  readonly index: number;
  readonly reason: string;
  readonly steps: readonly string[];
}

export interface FuzzReport {
  readonly cases: number;
  readonly byOutcome: Readonly<Record<string, number>>;
  readonly failures: readonly FuzzFailure[];
  readonly slowest: { readonly target: TargetName; readonly index: number; readonly ms: number } | undefined;
  readonly maxGrowthMb: number;
  readonly seconds: number;
}

const BOOT = new URL("./boot.mjs", import.meta.url);
const ENTRY = new URL("./worker.ts", import.meta.url).href;

class CaseWorker {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private pending: { resolve: (r: CaseResult | Error) => void } | undefined;

  constructor(
    private readonly corpusDir: string,
    private readonly workDir: string,
    private readonly heapMb: number,
  ) {}

  private start(): Promise<void> {
    const worker = new Worker(BOOT, {
      workerData: { entry: ENTRY, corpusDir: this.corpusDir, workDir: this.workDir },
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb, maxYoungGenerationSizeMb: 64 },
    });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      worker.on("message", (message: CaseResult | { ready: true }) => {
        if ("ready" in message) return resolve();
        const pending = this.pending;
        this.pending = undefined;
        pending?.resolve(message);
      });
      worker.on("error", (error) => {
        reject(error);
        const pending = this.pending;
        this.pending = undefined;
        this.worker = undefined;
        this.ready = undefined;
        pending?.resolve(error);
      });
    });
  }

  /** Runs one case; an Error when the worker died (out of memory, a crash) or the case outlived `timeCapMs`. */
  async run(request: CaseRequest, timeCapMs: number): Promise<CaseResult | Error> {
    this.ready ??= this.start();
    await this.ready;
    const worker = this.worker!;
    let timer: NodeJS.Timeout | undefined;
    const result = await new Promise<CaseResult | Error>((resolve) => {
      this.pending = { resolve };
      timer = setTimeout(() => resolve(new Error(`still running after ${timeCapMs} ms (a hang, or work not bounded by the input)`)), timeCapMs);
      worker.postMessage(request);
    });
    clearTimeout(timer);
    if (result instanceof Error) await this.stop();
    return result;
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    this.pending = undefined;
    await worker?.terminate();
  }
}

/** The command that replays one case and keeps its files. */
export function reproducer(failure: { target: TargetName; seed: number; index: number }, deep = false): string {
  return `npm run fuzz -- --target ${failure.target} --seed ${failure.seed} --case ${failure.index}${deep ? " --deep" : ""}`;
}

export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const root = options.dir ?? (await mkdtemp(join(tmpdir(), "b158-fuzz-")));
  const worker = new CaseWorker(join(root, "seeds"), join(root, "cases"), options.heapMb ?? 512);
  const timeCapMs = options.timeCapMs ?? 5000;
  const growthCap = (options.growthCapMb ?? 128) * 1024 * 1024;
  const byOutcome: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  let slowest: FuzzReport["slowest"];
  let maxGrowth = 0;
  let cases = 0;
  try {
    const indexes = options.only ?? Array.from({ length: options.iterations }, (_, i) => i);
    outer: for (const index of indexes) {
      for (const target of options.targets) {
        if (options.budgetMs !== undefined && performance.now() - started > options.budgetMs) break outer;
        const request: CaseRequest = { target, seed: options.seed, index, ...(options.keep ? { keep: true } : {}), ...(options.deep ? { deep: true } : {}) };
        const result = await worker.run(request, timeCapMs);
        cases++;
        const fail = (reason: string, steps: readonly string[] = []) => failures.push({ target, seed: options.seed, index, reason, steps });
        if (result instanceof Error) {
          byOutcome.failure = (byOutcome.failure ?? 0) + 1;
          fail(result.message);
          continue;
        }
        options.onResult?.(result);
        byOutcome[result.outcome] = (byOutcome[result.outcome] ?? 0) + 1;
        if (result.failure !== undefined) fail(result.failure, result.steps);
        else if (result.ms > timeCapMs) fail(`took ${result.ms.toFixed(0)} ms (cap ${timeCapMs})`, result.steps);
        else if (result.growth > growthCap) fail(`held ${(result.growth / 2 ** 20).toFixed(0)} MB more after the case (cap ${options.growthCapMb ?? 128})`, result.steps);
        if (slowest === undefined || result.ms > slowest.ms) slowest = { target, index, ms: result.ms };
        maxGrowth = Math.max(maxGrowth, result.growth);
      }
    }
  } finally {
    await worker.stop();
    if (options.dir === undefined) await rm(root, { recursive: true, force: true });
  }
  return { cases, byOutcome, failures, slowest, maxGrowthMb: maxGrowth / 2 ** 20, seconds: (performance.now() - started) / 1000 };
}
