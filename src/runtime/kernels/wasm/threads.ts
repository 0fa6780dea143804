import { Worker } from "node:worker_threads";
import { B158Error } from "../../../errors.js";
import { CLAIM_CLOSED, CONTROL, CONTROL_AT } from "./layout.js";

/**
 * Runs a dispatch's chunks on the calling thread and `threads - 1` workers that share the kernels'
 * WebAssembly.Memory. Each thread, the caller included, claims chunks with an atomic add until none
 * are left (a descheduled thread costs little: the others take its chunks); the caller then waits,
 * spinning briefly and then in Atomics.wait, until every chunk is done. The API stays synchronous.
 *
 * Workers are started by a supervisor thread whose event loop stays free: if a worker dies (an
 * exception, process.exit, out of memory) the supervisor flags the failure in shared memory and
 * wakes the caller, which throws instead of waiting forever. The supervisor is unref'd and its
 * workers exit on close(), so they never keep the process alive.
 */

export interface ThreadOptions {
  /** Spin iterations (Atomics.load) before a thread sleeps in Atomics.wait. */
  readonly spin?: number;
}

const C = CONTROL;

/** The worker: instantiate, then wait for a generation, run `work`, and repeat until stop. */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, ctrlAt, tid, spin } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const word = new Int32Array(memory.buffer, ctrlAt, ${C.words});
let seen = Atomics.load(word, ${C.generation});
for (;;) {
  let g = Atomics.load(word, ${C.generation});
  for (let i = 0; g === seen && i < spin; i++) g = Atomics.load(word, ${C.generation});
  if (g === seen) { Atomics.wait(word, ${C.generation}, seen); continue; }
  seen = g;
  if (Atomics.load(word, ${C.stop}) !== 0) break;
  if (Atomics.load(word, ${C.inject}) === tid) process.exit(70);
  try {
    instance.exports.work(ctrlAt, tid);
  } catch (error) {
    Atomics.store(word, ${C.failedThread}, tid);
    Atomics.compareExchange(word, ${C.failed}, 0, 1);
    Atomics.add(word, ${C.done}, ${CLAIM_CLOSED});
    Atomics.notify(word, ${C.done});
  }
}
`;

/** The supervisor: starts the workers and turns an unexpected exit into a flagged failure. */
const SUPERVISOR_SOURCE = `
const { Worker, workerData } = require("node:worker_threads");
const { module, memory, ctrlAt, threads, spin, workerSource } = workerData;
const word = new Int32Array(memory.buffer, ctrlAt, ${C.words});
function fail(tid, code) {
  if (Atomics.load(word, ${C.stop}) !== 0) return;
  Atomics.store(word, ${C.failedThread}, tid);
  Atomics.compareExchange(word, ${C.failed}, 0, code);
  Atomics.add(word, ${C.done}, ${CLAIM_CLOSED});
  Atomics.notify(word, ${C.done});
}
for (let tid = 1; tid < threads; tid++) {
  const worker = new Worker(workerSource, { eval: true, workerData: { module, memory, ctrlAt, tid, spin } });
  worker.on("error", () => fail(tid, 1));
  worker.on("exit", () => fail(tid, 2));
}
`;

export class Dispatcher {
  private readonly word: Int32Array;
  private readonly supervisor: Worker | undefined;
  private broken: B158Error | undefined;
  private readonly spin: number;

  constructor(
    memory: WebAssembly.Memory,
    private readonly work: (ctrl: number, tid: number) => void,
    module: WebAssembly.Module,
    readonly threads: number,
    options: ThreadOptions = {},
  ) {
    this.word = new Int32Array(memory.buffer, CONTROL_AT, C.words);
    this.word.fill(0);
    this.word[C.next] = CLAIM_CLOSED;
    this.spin = options.spin ?? 5_000; // about 0.1-0.3 ms of Atomics.load: covers the gaps between a forward pass's products
    if (threads > 1) {
      this.supervisor = new Worker(SUPERVISOR_SOURCE, {
        eval: true,
        workerData: { module, memory, ctrlAt: CONTROL_AT, threads, spin: this.spin, workerSource: WORKER_SOURCE },
      });
      this.supervisor.unref();
      this.supervisor.on("error", () => this.fail(0, 2));
    }
  }

  /** Where per-thread scratch lives (set before a dispatch that needs it). */
  setScratch(at: number, bytesPerThread: number): void {
    this.word[C.scratch] = at;
    this.word[C.scratchBytes] = bytesPerThread;
  }

  /**
   * Runs chunks 0..chunks-1 of the dispatch at `dispatchAt`. `parallel` false keeps the workers
   * asleep (work too small to be worth waking them).
   */
  run(dispatchAt: number, chunks: number, parallel: boolean): void {
    if (this.broken !== undefined) throw this.broken;
    const w = this.word;
    this.checkFailed();
    Atomics.store(w, C.dispatch, dispatchAt);
    Atomics.store(w, C.chunks, chunks);
    Atomics.store(w, C.done, 0);
    Atomics.store(w, C.next, 0);
    const wake = parallel && this.supervisor !== undefined;
    if (wake) {
      Atomics.add(w, C.generation, 1);
      Atomics.notify(w, C.generation);
    }
    try {
      this.work(CONTROL_AT, 0);
    } catch (error) {
      Atomics.store(w, C.next, CLAIM_CLOSED);
      throw this.markBroken(`a kernel failed on the calling thread: ${(error as Error).message}`, error);
    }
    let spins = 0;
    for (;;) {
      const done = Atomics.load(w, C.done);
      if (done >= chunks) break;
      if (++spins > this.spin) Atomics.wait(w, C.done, done, 100);
    }
    Atomics.store(w, C.next, CLAIM_CLOSED);
    this.checkFailed();
  }

  /** A worker that failed (now or since the last dispatch) breaks the context. */
  private checkFailed(): void {
    const failed = Atomics.load(this.word, C.failed);
    if (failed === 0) return;
    const tid = Atomics.load(this.word, C.failedThread);
    throw this.markBroken(failed === 1 ? `kernel worker ${tid} failed with an exception` : `kernel worker ${tid} exited unexpectedly`);
  }

  private fail(tid: number, code: number): void {
    Atomics.store(this.word, C.failedThread, tid);
    Atomics.compareExchange(this.word, C.failed, 0, code);
    Atomics.add(this.word, C.done, CLAIM_CLOSED);
    Atomics.notify(this.word, C.done);
  }

  private markBroken(message: string, cause?: unknown): B158Error {
    this.broken = new B158Error("E_INTERNAL", `${message}; these kernels cannot be used any more`, {
      hint: "Create a new kernel context (and report the failure: it is a bug in b158).",
      ...(cause === undefined ? {} : { cause }),
    });
    return this.broken;
  }

  /** Chunks thread `tid` (0 = the caller, < 8) has run. */
  chunksRun(tid: number): number {
    return Atomics.load(this.word, C.chunksRun + tid);
  }

  /** Tests only: the worker `tid` exits abruptly at its next dispatch. */
  injectExit(tid: number): void {
    Atomics.store(this.word, C.inject, tid);
  }

  async close(): Promise<void> {
    this.broken ??= new B158Error("E_INTERNAL", "these kernels were closed");
    if (this.supervisor === undefined) return;
    Atomics.store(this.word, C.stop, 1);
    Atomics.add(this.word, C.generation, 1);
    Atomics.notify(this.word, C.generation);
    // terminating the supervisor ends its workers too (they are its children)
    await this.supervisor.terminate();
  }
}
