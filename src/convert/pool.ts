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
  private readonly queue: { id: number; job: PoolJob; exclusive: boolean }[] = [];
  /** Slots held back from `idle` while a worker runs an exclusive job. */
  private readonly held = new Map<Worker, number>();
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
        const held = this.held.get(worker);
        if (held !== undefined) {
          for (let slot = 0; slot < held; slot++) this.idle.push(worker);
          this.held.delete(worker);
        }
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

  /**
   * Converts one tensor into its slot of the output (jobs.ts). An `exclusive` job has a worker to
   * itself when there are others for the rest: a job that long would otherwise share its thread
   * with a stream of others and finish last, alone (the embedding, whose payload is hashed in one
   * sequence).
   */
  write(job: PoolJob, options: { exclusive?: boolean } = {}): Promise<WrittenPayload> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith.reason);
    if (this.threads === 0) return runJob(job);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      // with one worker there is no other to take the rest: sharing it at least overlaps their I/O
      this.queue.push({ id, job, exclusive: options.exclusive === true && this.jobsPerWorker > 1 && this.threads > 1 });
      this.dispatch();
    });
  }

  /** Jobs in order; an exclusive one waits for a worker with every slot free. */
  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const { id, job, exclusive } = this.queue[0]!;
      const worker = exclusive ? this.idle.find((w) => this.idle.filter((v) => v === w).length === this.jobsPerWorker) : this.idle[this.idle.length - 1];
      if (worker === undefined) return;
      this.queue.shift();
      if (exclusive) {
        for (let slot = 1; slot < this.jobsPerWorker; slot++) this.idle.splice(this.idle.indexOf(worker), 1);
        this.held.set(worker, this.jobsPerWorker - 1);
      }
      this.idle.splice(this.idle.lastIndexOf(worker), 1);
      worker.postMessage({ id, job });
    }
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
