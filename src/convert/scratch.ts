/**
 * Reusable scratch memory for tensor tasks. A worker runs one task at a time and gets the same
 * buffers back each time, so a large tensor no longer costs fresh zeroed pages (page faults, GC
 * pressure) for its raw bytes, codes and decoded check; tasks running concurrently inline each
 * take their own. Contents are left over from earlier tasks: callers overwrite what they use.
 */
export class Scratch {
  private free: ArrayBuffer[] = [];

  /** Keeps the largest few: one task's worth (raw bytes, codes, decoded codes). */
  constructor(private readonly keep = 3) {}

  /** The smallest free buffer of at least `bytes`, or a new one. */
  take(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const size = this.free[i]!.byteLength;
      if (size >= bytes && (best === -1 || size < this.free[best]!.byteLength)) best = i;
    }
    return best === -1 ? new ArrayBuffer(bytes) : this.free.splice(best, 1)[0]!;
  }

  release(buffers: readonly ArrayBuffer[]): void {
    this.free = [...this.free, ...buffers].sort((a, b) => b.byteLength - a.byteLength).slice(0, this.keep);
  }
}

/** The buffers one task takes, given back together when it ends. */
export class Lease {
  private readonly held: ArrayBuffer[] = [];

  constructor(private readonly scratch: Scratch) {}

  bytes(length: number): Uint8Array {
    const buffer = this.scratch.take(length);
    this.held.push(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  codes(length: number): Int8Array {
    return new Int8Array(this.bytes(length).buffer, 0, length);
  }

  release(): void {
    this.scratch.release(this.held.splice(0));
  }
}
