/**
 * Next-token choice from logits: greedy (temperature 0), or sampling with temperature, top-k and
 * top-p (nucleus) from a seeded generator, so the same seed gives the same tokens. Buffers are sized
 * to the vocabulary once; choosing a token allocates nothing.
 */
export interface SamplingOptions {
  /** 0 (default): greedy, the highest logit (the lowest id on ties). */
  readonly temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  readonly topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: all). */
  readonly topP?: number;
  readonly seed?: number;
}

/** Tokens this far below the best logit (after temperature) have probability < e^-40 of it: never kept. */
const NEGLIGIBLE = 40;

export class Sampler {
  private readonly order: Int32Array;
  private readonly weights: Float64Array;
  private state: number;
  private readonly byWeight = (a: number, b: number): number => this.weights[b]! - this.weights[a]! || a - b;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;

  constructor(vocab: number, options: SamplingOptions = {}) {
    this.temperature = options.temperature ?? 0;
    this.topK = options.topK ?? 0;
    this.topP = options.topP ?? 1;
    this.seed = options.seed ?? 0;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) throw new RangeError(`temperature ${this.temperature} must be finite and >= 0`);
    if (!(Number.isInteger(this.topK) && this.topK >= 0)) throw new RangeError(`top-k ${this.topK} must be an integer >= 0`);
    if (!(this.topP > 0 && this.topP <= 1)) throw new RangeError(`top-p ${this.topP} must be in (0, 1]`);
    this.order = new Int32Array(vocab);
    this.weights = new Float64Array(vocab);
    this.state = this.seed >>> 0;
  }

  /** A uniform number in [0, 1): mulberry32, 32 bits of state. */
  random(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  sample(logits: Float32Array): number {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    if (this.temperature === 0) return best;
    const max = logits[best]!;
    const invT = 1 / this.temperature;
    // candidates: every token within NEGLIGIBLE of the best, with weight exp((l - max) / T)
    let n = 0;
    for (let i = 0; i < logits.length; i++) {
      const z = (logits[i]! - max) * invT;
      if (z < -NEGLIGIBLE) continue;
      this.order[n++] = i;
    }
    const order = this.order.subarray(0, n);
    const weights = this.weights;
    for (let j = 0; j < n; j++) weights[order[j]!] = Math.exp((logits[order[j]!]! - max) * invT);
    // most likely first, lower id first on ties: deterministic
    order.sort(this.byWeight);
    let keep = this.topK > 0 ? Math.min(this.topK, n) : n;
    let total = 0;
    for (let j = 0; j < keep; j++) total += weights[order[j]!]!;
    if (this.topP < 1) {
      let running = 0;
      for (let j = 0; j < keep; j++) {
        running += weights[order[j]!]!;
        if (running >= this.topP * total) {
          keep = j + 1;
          total = running;
          break;
        }
      }
    }
    let r = this.random() * total;
    for (let j = 0; j < keep; j++) {
      r -= weights[order[j]!]!;
      if (r < 0) return order[j]!;
    }
    return order[keep - 1]!;
  }
}
