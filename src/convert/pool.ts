import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { B158Error, type ErrorCode } from "../errors.js";
import { runJob, type PoolJob, type WrittenPayload } from "./jobs.js";


/**
 * A fixed pool of worker threads for tensor conversions.
 * With `threads <= 0`, or when the compiled worker is not there (tests running the TypeScript
 * sources), jobs run inline on this thread: same functions, same bytes.
 */
export class TaskPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; job: PoolJob }[] = [];
  private readonly pending = new Map<number, { resolve: (r: WrittenPayload) => void; reject: (e: unknown) => void }>();
  private nextId = 0;
  /** Why the pool was closed: later jobs fail with it. */
  private closedWith: { reason: unknown } | undefined;
  readonly threads: number;

  /**
   * `jobsPerWorker`: jobs a worker holds at once, each with its own arena; with two, one computes
   * while the other's payload goes to the disk.
   */
  constructor(
    threads: number,
    readonly jobsPerWorker = 1,
  ) {
    const script = new URL("./worker.js", import.meta.url);
    const usable = threads > 0 && existsSync(fileURLToPath(script));
    this.threads = usable ? threads : 0;
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(script);
      worker.on("message", (message: { id: number; result?: WrittenPayload; error?: { code: ErrorCode; message: string; hint?: string; details: Record<string, unknown> } }) => {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.idle.push(worker);
        this.dispatch();
        if (waiter === undefined) return;
        if (message.error) {
          const { code, message: text, hint, details } = message.error;
          waiter.reject(new B158Error(code, text, { ...(hint === undefined ? {} : { hint }), details }));
        } else waiter.resolve(message.result!);
      });
      worker.on("error", (error) => {
        for (const waiter of this.pending.values()) waiter.reject(new B158Error("E_INTERNAL", `conversion worker crashed: ${error.message}`, { cause: error }));
        this.pending.clear();
      });
      this.workers.push(worker);
      for (let slot = 0; slot < jobsPerWorker; slot++) this.idle.push(worker);
    }
  }

  /** Converts one tensor into its slot of the output (jobs.ts). */
  write(job: PoolJob): Promise<WrittenPayload> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith.reason);
    if (this.threads === 0) return runJob(job);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.queue.push({ id, job });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) this.idle.pop()!.postMessage(this.queue.shift());
  }

  /**
   * Stops the workers, mid-job if need be (a write under way finishes first), and fails the jobs
   * not done with `reason`. Resolves once every thread has exited; safe to call more than once.
   */
  async close(reason: unknown = new B158Error("E_INTERNAL", "the conversion workers were stopped")): Promise<void> {
    this.closedWith ??= { reason };
    for (const waiter of this.pending.values()) waiter.reject(reason);
    this.pending.clear();
    this.queue.length = 0;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
